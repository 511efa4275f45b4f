/**
 * HPACK codec: the RFC 7541 Appendix C examples, integer edge cases, every refusal the decoder owes a
 * hostile peer, and encodeHeaders round trips for gRPC response headers/trailers.
 */
import { describe, it } from 'node:test';
import { strict as assert } from 'node:assert';
import { HpackDecoder, HpackError, encodeHeaders } from '../../src/server/h2/hpack';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, huffmanDecode, huffmanEncode } from '../../src/server/h2/huffman';

type Fields = Array<[string, string]>;
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const bytes = (...parts: Array<number | string | Buffer>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
/** A plain (non-Huffman) string literal: 7-bit-prefix length, then the octets. */
const str = (s: string): Buffer => {
  const len = [Math.min(s.length, 0x7f)];
  if (s.length >= 0x7f) {
    let v = s.length - 0x7f;
    for (; v >= 0x80; v >>= 7) len.push((v & 0x7f) | 0x80);
    len.push(v);
  }
  return bytes(Buffer.from(len), s);
};
const refuses = (d: HpackDecoder, block: Buffer, why: RegExp): void => {
  assert.throws(() => d.decode(block), (e: unknown) => e instanceof HpackError && why.test(e.message));
};

/** Reads the whole dynamic table (newest first) with indexed fields, which leave it unchanged, then checks it ends there. */
function dynamicTable(d: HpackDecoder): Fields {
  const entries: Fields = [];
  for (let index = 62; index < 254; index++) {
    try {
      entries.push(...d.decode(Buffer.from(index < 127 ? [0x80 | index] : [0xff, index - 127])));
    } catch (e) {
      assert.ok(e instanceof HpackError && /out of range/.test(e.message), String(e));
      return entries;
    }
  }
  throw new Error('dynamic table larger than this probe reads');
}
const tableSize = (entries: Fields): number => entries.reduce((n, [k, v]) => n + k.length + v.length + 32, 0);

interface Step { block: string; headers: Fields; table: Fields; size: number }
function runSequence(maxTableSize: number, steps: Step[]): void {
  const d = new HpackDecoder(maxTableSize);
  for (const [i, step] of steps.entries()) {
    assert.deepEqual(d.decode(hex(step.block)), step.headers, `step ${i + 1} headers`);
    const table = dynamicTable(d);
    assert.deepEqual(table, step.table, `step ${i + 1} dynamic table`);
    assert.equal(tableSize(table), step.size, `step ${i + 1} table size`);
  }
}

describe('RFC 7541 C.1 integer representation', () => {
  it('C.1.1: 10 in a 5-bit prefix is one octet (table size update to 10 drops a 43-octet entry)', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(bytes(0x2a, 0x40, 1, 'a', 10, 'aaaaaaaaaa')), [['a', 'aaaaaaaaaa']]);
    assert.deepEqual(dynamicTable(d), []);
  });
  it('C.1.2: 1337 in a 5-bit prefix is 1f 9a 0a (an entry of exactly 1337 octets fits, 1338 does not)', () => {
    const d = new HpackDecoder();
    const fits = 'v'.repeat(1337 - 32 - 1), tooBig = fits + 'v';
    d.decode(bytes(0x3f, 0x9a, 0x0a, 0x40, str('n'), str(fits)));
    assert.deepEqual(dynamicTable(d), [['n', fits]]);
    d.decode(bytes(0x40, str('n'), str(tooBig)));
    assert.deepEqual(dynamicTable(d), []);
  });
  it('C.1.3: 42 starting at an octet boundary (a 42-octet string length in one octet)', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(bytes(0x00, 1, 'x', 42, 'y'.repeat(42))), [['x', 'y'.repeat(42)]]);
  });
  it('prefix boundaries: 2^N - 1 takes a zero continuation octet; 2^31 - 1 is the largest accepted', () => {
    const d = new HpackDecoder();
    assert.deepEqual(str('z'.repeat(127)).subarray(0, 2), Buffer.from([0x7f, 0x00]));
    assert.deepEqual(d.decode(bytes(0x00, 1, 'x', 0x7f, 0x00, 'z'.repeat(127))), [['x', 'z'.repeat(127)]]);
    assert.deepEqual(d.decode(bytes(0x00, 1, 'x', 0x7f, 0x01, 'z'.repeat(128))), [['x', 'z'.repeat(128)]]);
    assert.deepEqual(d.decode(bytes(0x00, 1, 'x', str('w'.repeat(20000)))), [['x', 'w'.repeat(20000)]]);
    refuses(d, hex('3f e0 ff ff ff 07'), /size update to 2147483647 above the maximum/);
  });
});

describe('RFC 7541 C.2 header field representations', () => {
  it('C.2.1 literal with indexing', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [['custom-key', 'custom-header']]);
    assert.deepEqual(dynamicTable(d), [['custom-key', 'custom-header']]);
    assert.equal(tableSize(dynamicTable(d)), 55);
  });
  it('C.2.2 literal without indexing', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']]);
    assert.deepEqual(dynamicTable(d), []);
  });
  it('C.2.3 literal never indexed', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']]);
    assert.deepEqual(dynamicTable(d), []);
  });
  it('C.2.4 indexed', () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex('82')), [[':method', 'GET']]);
    assert.deepEqual(dynamicTable(d), []);
  });
});

const req1: Fields = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']];
const req2: Fields = [...req1, ['cache-control', 'no-cache']];
const req3: Fields = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']];
const reqTables: Fields[] = [
  [[':authority', 'www.example.com']],
  [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
  [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
];

describe('RFC 7541 C.3/C.4 request sequences (one decoder each)', () => {
  it('C.3 without Huffman', () => runSequence(4096, [
    { block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', headers: req1, table: reqTables[0], size: 57 },
    { block: '8286 84be 5808 6e6f 2d63 6163 6865', headers: req2, table: reqTables[1], size: 110 },
    { block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', headers: req3, table: reqTables[2], size: 164 },
  ]));
  it('C.4 with Huffman', () => runSequence(4096, [
    { block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', headers: req1, table: reqTables[0], size: 57 },
    { block: '8286 84be 5886 a8eb 1064 9cbf', headers: req2, table: reqTables[1], size: 110 },
    { block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', headers: req3, table: reqTables[2], size: 164 },
  ]));
});

const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT', date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const loc = 'https://www.example.com', cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const res1: Fields = [[':status', '302'], ['cache-control', 'private'], ['date', date1], ['location', loc]];
const res2: Fields = [[':status', '307'], ['cache-control', 'private'], ['date', date1], ['location', loc]];
const res3: Fields = [[':status', '200'], ['cache-control', 'private'], ['date', date2], ['location', loc], ['content-encoding', 'gzip'], ['set-cookie', cookie]];
const resTables: Fields[] = [
  [['location', loc], ['date', date1], ['cache-control', 'private'], [':status', '302']],
  // ':status: 307' evicts ':status: 302'
  [[':status', '307'], ['location', loc], ['date', date1], ['cache-control', 'private']],
  // date, content-encoding and set-cookie evict everything older
  [['set-cookie', cookie], ['content-encoding', 'gzip'], ['date', date2]],
];

describe('RFC 7541 C.5/C.6 response sequences (table size 256, evictions)', () => {
  it('C.5 without Huffman', () => runSequence(256, [
    { block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
              2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      headers: res1, table: resTables[0], size: 222 },
    { block: '4803 3330 37c1 c0bf', headers: res2, table: resTables[1], size: 222 },
    { block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
              54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
              5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
      headers: res3, table: resTables[2], size: 215 },
  ]));
  it('C.6 with Huffman', () => runSequence(256, [
    { block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
              2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      headers: res1, table: resTables[0], size: 222 },
    { block: '4883 640e ffc1 c0bf', headers: res2, table: resTables[1], size: 222 },
    { block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
              77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
              9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      headers: res3, table: resTables[2], size: 215 },
  ]));
});

describe('dynamic table', () => {
  it('size update to 0 empties it, a later update re-enables it; two updates may open a block', () => {
    const d = new HpackDecoder();
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.deepEqual(d.decode(bytes(0x20)), []);
    assert.deepEqual(dynamicTable(d), []);
    d.decode(bytes(0x40, 1, 'a', 1, 'b')); // capacity 0: not stored
    assert.deepEqual(dynamicTable(d), []);
    assert.deepEqual(d.decode(bytes(0x20, 0x3f, 0xe1, 0x1f, 0x40, 1, 'a', 1, 'b')), [['a', 'b']]);
    assert.deepEqual(dynamicTable(d), [['a', 'b']]);
  });
  it('literal with indexed name from the dynamic table, and many insertions past the ring size', () => {
    const d = new HpackDecoder(4096);
    for (let i = 0; i < 300; i++) d.decode(bytes(0x40, 1, 'k', 0x03, String(i).padStart(3, '0')));
    const table = dynamicTable(d);
    assert.equal(table.length, Math.floor(4096 / 36));
    assert.deepEqual(table[0], ['k', '299']);
    assert.deepEqual(d.decode(bytes(0x7e, 2, 'xy')), [['k', 'xy']]); // 0x40 | 62: name of the newest entry
    assert.deepEqual(dynamicTable(d)[0], ['k', 'xy']);
  });
});

describe('malformed blocks are refused with HpackError', () => {
  const d = new HpackDecoder();
  it('integers: truncated, overflow past 2^31, too many continuation octets', () => {
    refuses(d, hex('3f ff'), /truncated integer/);
    refuses(d, hex('ff ff ff ff ff 07'), /integer overflow/);
    refuses(d, hex('3f ff ff ff ff 08'), /integer overflow/);
    refuses(d, hex('3f 80 80 80 80 80 00'), /integer overflow/);
  });
  it('strings past the end, a missing value', () => {
    refuses(d, bytes(0x40, 10, 'abc'), /past the end/);
    refuses(d, bytes(0x04, 0x85, 0xff), /past the end/);
    refuses(d, bytes(0x00, 1, 'a'), /string missing/);
  });
  it('index 0 and indices out of range', () => {
    refuses(d, bytes(0x80), /index 0/);
    refuses(d, bytes(0xbe), /index 62 out of range/);
    refuses(d, bytes(0x7f, 0x01, 1, 'v'), /index 64 out of range/);
  });
  it('invalid Huffman: EOS inside, padding over 7 bits, padding not all ones', () => {
    assert.deepEqual(d.decode(bytes(0x00, 1, 'x', 0x81, 0x1f)), [['x', 'a']]); // 'a' = 00011, padded with 111
    refuses(d, bytes(0x00, 1, 'x', 0x84, hex('ffffffff')), /Huffman/); // 30 ones = EOS
    refuses(d, bytes(0x00, 1, 'x', 0x85, hex('1fffffffff')), /Huffman/);
    refuses(d, bytes(0x00, 1, 'x', 0x82, hex('1fff')), /Huffman/); // 'a' then 11 bits of padding
    refuses(d, bytes(0x00, 1, 'x', 0x81, 0x18), /Huffman/); // 'a' then 000
    refuses(d, bytes(0x40, 0x81, 0x1e, 1, 'v'), /Huffman/); // name: 'a' then 110
  });
  it('size updates: above the maximum, after a header field', () => {
    refuses(new HpackDecoder(256), hex('3f e2 01'), /above the maximum 256/);
    refuses(new HpackDecoder(), hex('82 20'), /after a header field/);
  });
  it('a header list over maxHeaderListSize, including one amplified by dynamic table references', () => {
    refuses(new HpackDecoder(4096, 100), bytes(0x00, 10, 'x'.repeat(10), 60, 'y'.repeat(60)), /header list larger than 100/);
    const big = 'v'.repeat(4000);
    const d2 = new HpackDecoder();
    d2.decode(bytes(0x40, str('k'), str(big)));
    assert.equal(d2.decode(Buffer.alloc(16, 0xbe)).length, 16); // 16 × 4033 < 64 KiB
    refuses(d2, Buffer.alloc(17, 0xbe), /header list larger than 65536/);
  });
});

describe('Huffman code', () => {
  it('is a complete prefix code (Kraft sum 1) with 257 symbols, EOS = 30 ones', () => {
    assert.equal(HUFFMAN_CODES.length, 257);
    assert.equal(HUFFMAN_LENGTHS.reduce((s, l) => s + 2 ** -l, 0), 1);
    assert.equal(HUFFMAN_CODES[256], 0x3fffffff);
  });
  it('round-trips every octet value', () => {
    const all = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
    const enc = huffmanEncode(all + all.split('').reverse().join(''));
    assert.equal(huffmanDecode(enc, 0, enc.length), all + all.split('').reverse().join(''));
    for (let n = 0; n < 12; n++) {
      const s = 'grpc-timeout'.slice(0, n);
      assert.equal(huffmanDecode(huffmanEncode(s), 0, huffmanEncode(s).length), s);
    }
  });
});

describe('encodeHeaders', () => {
  it("':status: 200' is the single octet 0x88", () => {
    assert.deepEqual(encodeHeaders([[':status', '200']]), Buffer.from([0x88]));
  });
  it('uses static name indices (multi-octet past 15) and literal names otherwise', () => {
    assert.deepEqual(encodeHeaders([['content-type', 'application/grpc']]), bytes(0x0f, 0x10, 16, 'application/grpc'));
    assert.deepEqual(encodeHeaders([[':status', '418']]), bytes(0x08, 3, '418'));
    assert.deepEqual(encodeHeaders([['grpc-status', '0']]), bytes(0x00, 11, 'grpc-status', 1, '0'));
  });
  it('round-trips gRPC headers and trailers through HpackDecoder, leaving its table empty', () => {
    const d = new HpackDecoder();
    const headers: Fields = [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-accept-encoding', 'identity']];
    const trailers: Fields = [
      ['grpc-status', '5'],
      ['grpc-message', 'snapshot "k8s.io/12/sha256:ab" not found: 100%25 %E2%9C%93 %0A'],
      ['trace-bin', Buffer.from([0, 0xff, 0x80, 0x7f]).toString('base64')],
      ['x-latin1', '\u00e9\u00ff\u0080'],
      ['x-long', 'L'.repeat(300)],
    ];
    assert.deepEqual(d.decode(encodeHeaders(headers)), headers);
    assert.deepEqual(d.decode(encodeHeaders(trailers)), trailers);
    assert.deepEqual(d.decode(encodeHeaders([])), []);
    assert.deepEqual(dynamicTable(d), []);
  });
});
