// Hapta app settings: enables the batch API (100 requests, 30 s timeout, default body limit) and
// trusts the X-Hapta-Client-IP header, in which the sidecar passes the real client IP, for PocketBase's client IP.
//
// The down migration restores PocketBase 0.40.4's defaults for these two settings groups.

migrate((app) => {
  const settings = app.settings();

  settings.batch.enabled = true;
  settings.batch.maxRequests = 100;
  settings.batch.timeout = 30; // seconds
  settings.batch.maxBodySize = 0; // 0 = PocketBase's built-in limit (~128 MB)

  settings.trustedProxy.headers = ["X-Hapta-Client-IP"];
  settings.trustedProxy.useLeftmostIP = false;

  app.save(settings);
}, (app) => {
  const settings = app.settings();

  settings.batch.enabled = false;
  settings.batch.maxRequests = 50;
  settings.batch.timeout = 3;
  settings.batch.maxBodySize = 0;

  settings.trustedProxy.headers = [];
  settings.trustedProxy.useLeftmostIP = false;

  app.save(settings);
});
