// The realtime client registry's bookkeeping (no server needed): clients by key with or without a Set,
// and the one end handler every client of a registry reports to.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientIndex, Registry, type CloseReason, type RtClient } from '../sidecar/realtime/clients.js';

const LIMITS = { maxClients: 3, maxClientsPerIp: 2, idleTimeoutMs: 60_000, maxLifetimeMs: 60_000, maxBufferedBytes: 1 << 20 };

describe('realtime clients', () => {
  test('ClientIndex: one client, several, removal down to none', () => {
    const reg = new Registry(LIMITS);
    const [a, b, c] = [reg.open('1.1.1.1'), reg.open('1.1.1.1'), reg.open('2.2.2.2')];
    const ix = new ClientIndex();
    ix.add('k', a);
    ix.add('k', a);
    assert.deepEqual(ix.get('k'), [a]);
    ix.add('k', b);
    ix.add('k', c);
    assert.deepEqual(ix.get('k'), [a, b, c]);
    ix.delete('k', b);
    ix.delete('k', c);
    assert.deepEqual(ix.get('k'), [a]);
    ix.add('k', c);
    assert.deepEqual(ix.get('k'), [a, c]);
    ix.delete('k', a);
    ix.delete('k', a);
    assert.deepEqual(ix.get('k'), [c]);
    ix.delete('k', b);
    assert.deepEqual(ix.get('k'), [c]);
    ix.delete('k', c);
    assert.deepEqual(ix.get('k'), []);
    assert.equal(ix.size, 0);
    assert.deepEqual(ix.get('other'), []);
  });

  test('Registry: caps per sidecar and per address, and every end reported once after leaving', () => {
    const ended: Array<[RtClient, CloseReason, number]> = [];
    const reg = new Registry(LIMITS, (c, reason) => ended.push([c, reason, reg.size]));
    const a = reg.open('1.1.1.1');
    const b = reg.open('1.1.1.1');
    assert.match(reg.refusal('1.1.1.1') ?? '', /from this address/);
    assert.equal(reg.refusal('2.2.2.2'), null);
    const c = reg.open('2.2.2.2');
    assert.match(reg.refusal('3.3.3.3') ?? '', /Too many realtime connections\./);
    a.close('idle');
    a.close('gone');
    assert.deepEqual(ended, [[a, 'idle', 2]]);
    assert.equal(reg.get(a.id), undefined);
    assert.equal(reg.refusal('1.1.1.1'), null);
    b.close('session');
    c.close('shutdown');
    assert.deepEqual(ended.map(([x, r]) => [x.id, r]), [[a.id, 'idle'], [b.id, 'session'], [c.id, 'shutdown']]);
    assert.equal(reg.size, 0);
  });
});
