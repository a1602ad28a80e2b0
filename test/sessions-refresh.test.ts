// The PocketBase token behind a session is refreshed ahead of its expiry, not on every use: a superuser's
// token lives one day, as long as the default refresh lead (HAPTA_PB_REFRESH_BEFORE), and every request
// forwarded for such a session used to cost PocketBase an auth-refresh first.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { metricSum } from './harness/metrics.js';
import { startPocketBase, SUPERUSER, type PocketBase } from './harness/pocketbase.js';
import { startSidecar, waitForSync, type TestSidecar } from './harness/sidecar.js';

describe('PocketBase token refresh', () => {
  let pb: PocketBase;
  let sidecar: TestSidecar;

  before(async () => {
    pb = await startPocketBase();
    sidecar = await startSidecar(pb, { rateLimits: { enabled: false } });
    await waitForSync(sidecar);
  });
  after(async () => {
    await sidecar?.destroy();
    await pb?.destroy();
  });

  test('a superuser session forwards requests without refreshing its one-day token each time', async () => {
    const res = await fetch(`${sidecar.url}/api/collections/_superusers/auth-with-password`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ identity: SUPERUSER.email, password: SUPERUSER.password }),
    });
    assert.equal(res.status, 200);
    const key = ((await res.json()) as { token: string }).token;
    const refreshes = () => metricSum(sidecar.metrics.upstreamRequests, { purpose: 'auth' });
    const before = await refreshes();
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${sidecar.url}/api/settings`, { headers: { authorization: key } });
      assert.equal(r.status, 200, 'forwarded with the session\'s PocketBase token');
      await r.arrayBuffer();
    }
    assert.equal(await refreshes() - before, 0, 'no auth-refresh sent to PocketBase');
  });
});
