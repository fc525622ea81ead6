import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inNicOrder } from './discovery.js';

const port = (mac: string) => ({ id: `port-${mac}`, mac_address: mac });
const addr = (mac: string) => ({ 'OS-EXT-IPS-MAC:mac_addr': mac });

describe('inNicOrder', () => {
  it("orders a server's ports as Nova's addresses list their MACs (the NIC order), not as Neutron listed them", () => {
    const server = { addresses: { 'net-b': [addr('aa:02')], 'net-a': [addr('aa:03'), addr('aa:01')] } };
    assert.deepEqual(inNicOrder([port('aa:01'), port('aa:02'), port('aa:03')], server).map((p) => p.mac_address), ['aa:02', 'aa:03', 'aa:01']);
  });

  it('puts a port Nova does not show yet last, and leaves ports alone when the server has no addresses', () => {
    assert.deepEqual(inNicOrder([port('x'), port('aa:01')], { addresses: { n: [addr('aa:01')] } }).map((p) => p.mac_address), ['aa:01', 'x']);
    assert.deepEqual(inNicOrder([port('b'), port('a')], {}).map((p) => p.mac_address), ['b', 'a']);
  });
});
