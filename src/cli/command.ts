/** The shape of one snapctl subcommand; src/cli/commands/index.ts lists them. */
export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** The words that select it: ['ls'] or ['volume', 'create']. */
  name: string[];
  summary: string;
  usage: string;
  /** argv holds the arguments after the command's name; the exit code is returned, never process.exit. */
  run(argv: string[], io: CliIO): Promise<number>;
}
