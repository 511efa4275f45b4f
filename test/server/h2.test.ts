/**
 * strata's gRPC server (src/server/h2) against grpc-js's client and raw HTTP/2: unary and streaming calls,
 * statuses, flow control both ways with messages far larger than the windows, deadlines, cancellation,
 * concurrency, limits, refusals of non-gRPC requests and garbage, and graceful shutdown. containerd's grpc-go
 * client is the other peer, in test/e2e.
 */
import * as grpc from '@grpc/grpc-js';
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GrpcServer } from '../../src/server/h2/server';

const id = (b: Buffer): Buffer => b;
function method(name: string, responseStream = false): grpc.MethodDefinition<Buffer, Buffer> {
  return { path: `/strata.test.T/${name}`, requestStream: false, responseStream, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id };
}
const SERVICE = {
  echo: method('Echo'),
  fail: method('Fail'),
  slow: method('Slow'),
  throws: method('Throws'),
  stream: method('Stream', true),
  streamFail: method('StreamFail', true),
} satisfies grpc.ServiceDefinition;

type Client = grpc.Client & Record<keyof typeof SERVICE, (...args: never[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<Buffer>>;

describe('h2 gRPC server', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-h2-'));
  const sock = path.join(dir, 's.sock');
  let server: GrpcServer;
  let client: Client;
  const cancelled: string[] = [];

  before(async () => {
    server = new GrpcServer({ maxReceiveMessageLength: 8 << 20, maxSendMessageLength: 8 << 20 });
    server.addService(SERVICE, {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
      fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb({ code: grpc.status.NOT_FOUND, details: `snapshot "${call.request.toString()}" not found: 100% ünïcode\nline` }),
      slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        call.on('cancelled', () => cancelled.push(call.request.toString()));
        setTimeout(() => cb(null, Buffer.from('late')), Number(call.request.toString().split(':')[1] ?? 5000));
      },
      throws: () => {
        throw new Error('handler bug');
      },
      stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const [n, size] = call.request.toString().split('x').map(Number) as [number, number];
        for (let i = 0; i < n; i++) {
          const b = Buffer.alloc(size, i % 251);
          b.writeUInt32BE(i, 0);
          call.write(b);
        }
        call.end();
      },
      streamFail: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        call.write(Buffer.from('one'));
        call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'after one' });
      },
    });
    await server.listen(sock);
    const C = grpc.makeGenericClientConstructor(SERVICE, 'T');
    client = new C(`unix://${sock}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 }) as unknown as Client;
  });

  after(() => {
    client.close();
    server.forceShutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const unary = (name: keyof typeof SERVICE, req: Buffer, deadlineMs?: number): Promise<Buffer> =>
    new Promise((res, rej) => {
      const fn = client[name] as unknown as (r: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void;
      fn.call(client, req, new grpc.Metadata(), deadlineMs ? { deadline: Date.now() + deadlineMs } : {}, (e, r) => (e ? rej(e) : res(r!)));
    });
  const streamAll = (name: 'stream' | 'streamFail', req: Buffer): Promise<{ msgs: Buffer[]; err?: grpc.ServiceError }> =>
    new Promise((res) => {
      const msgs: Buffer[] = [];
      const s = (client[name] as unknown as (r: Buffer) => grpc.ClientReadableStream<Buffer>).call(client, req);
      s.on('data', (b: Buffer) => msgs.push(b));
      s.on('error', (err: grpc.ServiceError) => res({ msgs, err }));
      s.on('end', () => res({ msgs }));
    });

  it('echoes requests of every size, across the receive window and frame size', async () => {
    for (const size of [0, 1, 16_383, 16_384, 100_000, 1 << 20, 5 << 20]) {
      const req = Buffer.alloc(size);
      for (let i = 0; i < size; i += 997) req[i] = i & 0xff;
      const res = await unary('echo', req);
      assert.equal(res.length, size);
      assert.ok(res.equals(req), `echo of ${size} bytes`);
    }
  });

  it('sends error statuses with their message, percent-encoded on the wire and decoded by the client', async () => {
    await assert.rejects(unary('fail', Buffer.from('k1')), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND);
      assert.equal(e.details, 'snapshot "k1" not found: 100% ünïcode\nline');
      return true;
    });
    await assert.rejects(unary('throws', Buffer.alloc(0)), (e: grpc.ServiceError) => e.code === grpc.status.UNKNOWN && /handler bug/.test(e.details));
  });

  it('answers an unknown method with UNIMPLEMENTED and keeps the connection usable', async () => {
    const C = grpc.makeGenericClientConstructor({ nope: { ...method('Nope'), path: '/strata.test.T/Nope' } }, 'X');
    const c = new C(`unix://${sock}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { nope(r: Buffer, cb: (e: grpc.ServiceError | null) => void): void };
    const err = await new Promise<grpc.ServiceError | null>((r) => c.nope(Buffer.alloc(0), r));
    c.close();
    assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
    assert.equal((await unary('echo', Buffer.from('still here'))).toString(), 'still here');
  });

  it('streams many small and several large messages in order (outbound flow control)', async () => {
    const small = await streamAll('stream', Buffer.from('10000x64'));
    assert.equal(small.err, undefined);
    assert.equal(small.msgs.length, 10_000);
    small.msgs.forEach((m, i) => assert.equal(m.readUInt32BE(0), i));
    const big = await streamAll('stream', Buffer.from(`3x${6 << 20}`));
    assert.equal(big.msgs.length, 3);
    big.msgs.forEach((m, i) => {
      assert.equal(m.length, 6 << 20);
      assert.equal(m.readUInt32BE(0), i);
      assert.equal(m[m.length - 1], i % 251);
    });
  });

  it('ends a stream with the status a handler emits after some messages', async () => {
    const r = await streamAll('streamFail', Buffer.alloc(0));
    assert.deepEqual(r.msgs.map(String), ['one']);
    assert.equal(r.err?.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(r.err?.details, 'after one');
  });

  it('enforces the client deadline and tells the handler the call was cancelled', async () => {
    await assert.rejects(unary('slow', Buffer.from('deadline:3000'), 200), (e: grpc.ServiceError) => e.code === grpc.status.DEADLINE_EXCEEDED);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(cancelled.includes('deadline:3000'), `handler saw the cancellation (${cancelled.join(',')})`);
  });

  it('sees a client cancel as a cancelled call', async () => {
    const call = (client.slow as unknown as (r: Buffer, cb: () => void) => grpc.ClientUnaryCall).call(client, Buffer.from('cancel:3000'), () => undefined);
    await new Promise((r) => setTimeout(r, 100));
    call.cancel();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(cancelled.includes('cancel:3000'));
  });

  it('runs 300 concurrent calls', async () => {
    const res = await Promise.all(Array.from({ length: 300 }, (_, i) => unary('echo', Buffer.from(`c${i}`))));
    res.forEach((r, i) => assert.equal(r.toString(), `c${i}`));
  });

  it('refuses a request over the receive limit with RESOURCE_EXHAUSTED', async () => {
    await assert.rejects(unary('echo', Buffer.alloc((8 << 20) + 1)), (e: grpc.ServiceError) => e.code === grpc.status.RESOURCE_EXHAUSTED);
    assert.equal((await unary('echo', Buffer.from('ok'))).toString(), 'ok');
  });

  it('answers non-gRPC HTTP/2 requests with HTTP statuses and a compressed message with a gRPC error', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    const ask = (headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; trailers: http2.IncomingHttpHeaders }> =>
      new Promise((res, rej) => {
        const r = session.request(headers, { endStream: !body });
        let status = 0;
        let trailers: http2.IncomingHttpHeaders = {};
        r.on('response', (h) => {
          status = Number(h[':status']);
          if (h['grpc-status'] !== undefined) trailers = h;
        });
        r.on('trailers', (t) => (trailers = t));
        r.on('data', () => undefined);
        r.on('end', () => res({ status, trailers }));
        r.on('error', rej);
        if (body) r.end(body);
      });
    try {
      assert.equal((await ask({ ':method': 'GET', ':path': '/strata.test.T/Echo' })).status, 405);
      assert.equal((await ask({ ':method': 'POST', ':path': '/strata.test.T/Echo', 'content-type': 'text/plain' }, Buffer.alloc(5))).status, 415);
      const compressed = Buffer.from([1, 0, 0, 0, 1, 0x41]);
      const r = await ask({ ':method': 'POST', ':path': '/strata.test.T/Echo', 'content-type': 'application/grpc', te: 'trailers' }, compressed);
      assert.equal(r.status, 200);
      assert.equal(r.trailers['grpc-status'], String(grpc.status.INTERNAL));
      const enc = await ask({ ':method': 'POST', ':path': '/strata.test.T/Echo', 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' }, Buffer.alloc(5));
      assert.equal(enc.trailers['grpc-status'], String(grpc.status.UNIMPLEMENTED));
    } finally {
      session.close();
    }
  });

  it('closes a connection that does not speak HTTP/2 and keeps serving others', async () => {
    const closed = await new Promise<boolean>((res) => {
      const s = net.connect(sock, () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('data', () => undefined);
      s.on('close', () => res(true));
      s.on('error', () => res(true));
    });
    assert.ok(closed);
    assert.equal((await unary('echo', Buffer.from('alive'))).toString(), 'alive');
  });

  it('shuts down gracefully: the call in flight finishes, then the server is gone', async () => {
    const inflight = unary('slow', Buffer.from('drain:300'));
    await new Promise((r) => setTimeout(r, 50));
    const done = new Promise<void>((r) => server.tryShutdown(r));
    assert.equal((await inflight).toString(), 'late');
    await done;
    await assert.rejects(unary('echo', Buffer.from('x'), 1000));
  });
});
