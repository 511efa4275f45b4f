/**
 * `docker volume create -o key=value` options for strata volumes:
 *   size=64M             hard size limit (binary units, like Docker's own `size` options)
 *   snapshot-of=NAME     a read-only point-in-time copy of volume NAME
 *   clone-of=NAME        a writable copy of volume NAME
 *   label.KEY=VALUE      a label (repeatable); or labels=K=V,K2=V2
 * Docker keeps its own `--label`s to itself, so labels for strata travel as options.
 */
import { invalidArgument } from '../../core/errors';
import type { Labels } from '../../core/types';
import { parseSize, validateName } from '../names';
import type { CreateVolumeRequest } from '../types';

export const KNOWN_OPTIONS = ['size', 'snapshot-of', 'clone-of', 'labels', 'label.<key>'];

export function requestFromOptions(name: string, opts: Record<string, unknown> | null | undefined): CreateVolumeRequest {
  const options: Record<string, string> = {};
  const labels: Labels = {};
  const req: CreateVolumeRequest = { name, labels, options };
  for (const [key, raw] of Object.entries(opts ?? {})) {
    if (typeof raw !== 'string') throw invalidArgument(`option "${key}" must be a string`);
    options[key] = raw;
    if (key === 'size') req.sizeLimit = parseSize(raw, 'option size');
    else if (key === 'snapshot-of') req.snapshotOf = validateName(raw, 'option snapshot-of');
    else if (key === 'clone-of') req.cloneOf = validateName(raw, 'option clone-of');
    else if (key.startsWith('label.') && key.length > 'label.'.length) labels[key.slice('label.'.length)] = raw;
    else if (key === 'labels') {
      for (const pair of raw.split(',').filter(Boolean)) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw invalidArgument(`option labels: "${pair}" is not KEY=VALUE`);
        labels[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
    } else {
      throw invalidArgument(`unknown option "${key}" (strata volumes take ${KNOWN_OPTIONS.join(', ')})`);
    }
  }
  return req;
}
