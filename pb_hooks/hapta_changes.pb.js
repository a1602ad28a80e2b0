/// <reference path="../pb_data/types.d.ts" />
// Hapta's PocketBase hooks: keep the change-log triggers installed on every base and auth collection,
// prune the log, serve it to the sidecar (superusers only) at /api/hapta-sync/changes, and announce the
// log head on the realtime topic "hapta/changes" after each record write.

onBootstrap((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).ensureAll(e.app);
});

onCollectionAfterCreateSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).ensureCollection(e.app, e.collection);
});

onCollectionAfterUpdateSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).ensureCollection(e.app, e.collection);
});

onCollectionAfterDeleteSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).dropTriggers(e.app, e.collection.id);
});

onRecordAfterCreateSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).announce(e.app);
});

onRecordAfterUpdateSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).announce(e.app);
});

onRecordAfterDeleteSuccess((e) => {
  e.next();
  require(`${__hooks}/hapta/changelog.js`).announce(e.app);
});

cronAdd("hapta_log_prune", "*/5 * * * *", () => {
  require(`${__hooks}/hapta/changelog.js`).prune($app);
  require(`${__hooks}/hapta/changelog.js`).prunePairs($app);
});

// A write a sidecar pairs with a read of the log head (X-Hapta-Pair): noted once its handler returned.
routerUse((e) => {
  const pair = e.request.header.get("X-Hapta-Pair");
  if (!pair) return e.next();
  try {
    return e.next();
  } finally {
    require(`${__hooks}/hapta/changelog.js`).notePair(e.app, pair);
  }
});

// GET /api/hapta-sync/changes?after=SEQ&limit=N&consumer=ID
// Returns the log rows with seq >= after (the row at `after` itself is the anchor the sidecar uses to
// check that the log it resumes is the one it applied), the head, the pruned prefix and the instance id.
routerAdd("GET", "/api/hapta-sync/changes", (e) => {
  const log = require(`${__hooks}/hapta/changelog.js`);
  const after = Math.max(0, parseInt(e.request.url.query().get("after") || "0", 10) || 0);
  const limit = Math.min(5000, Math.max(1, parseInt(e.request.url.query().get("limit") || "1000", 10) || 1000));
  const consumer = e.request.url.query().get("consumer") || "";
  const head = log.head(e.app);
  const rows = log.readChanges(e.app, after, limit);
  log.noteConsumer(e.app, consumer, after);
  let anchor = null;
  const changes = [];
  for (const r of rows) {
    const item = { seq: r.seq, coll: r.coll, rid: r.rid, op: r.op, at: r.at };
    if (r.seq === after) anchor = item;
    else if (changes.length < limit) changes.push(item);
  }
  // Read after the log rows, so each record is at least as new as the changes that name it; a write
  // committed meanwhile makes it newer. "upper" is the head read after the records: no record returned
  // is newer than that position (the sidecar's monotonic reads rest on it).
  const withRecords = e.request.url.query().get("records") === "1";
  const records = withRecords ? log.lookupChanged(e.app, changes) : {};
  const upper = withRecords ? log.head(e.app) : head;
  return e.json(200, {
    instance: log.readMeta(e.app, "instance"),
    prunedThrough: parseInt(log.readMeta(e.app, "pruned_through") || "0", 10),
    head,
    upper,
    anchor,
    changes,
    more: rows.length - (anchor ? 1 : 0) > limit,
    records,
  });
}, $apis.requireSuperuserAuth());

// GET /api/hapta-sync/rowids?coll=ID&after=ROWID&limit=N
// A collection's (rowid, id) pairs in rowid order, keyset-paged: the rowid is PocketBase's order for a
// list without sort, which the records API does not expose. The records themselves are copied through
// the records API.
routerAdd("GET", "/api/hapta-sync/rowids", (e) => {
  const log = require(`${__hooks}/hapta/changelog.js`);
  const q = e.request.url.query();
  const c = log.findReplicated(e.app, q.get("coll") || "");
  if (!c) return e.json(404, { status: 404, message: "Missing collection context.", data: {} });
  const after = Math.max(0, parseInt(q.get("after") || "0", 10) || 0);
  const limit = Math.min(20000, Math.max(1, parseInt(q.get("limit") || "5000", 10) || 5000));
  const pairs = log.rowidsAfter(e.app, c, after, limit);
  const rowids = [];
  const ids = [];
  for (const p of pairs) {
    rowids.push(p.r);
    ids.push(p.id);
  }
  return e.json(200, { rowids, ids, last: pairs.length > 0 ? pairs[pairs.length - 1].r : after, done: pairs.length < limit });
}, $apis.requireSuperuserAuth());

// POST /api/hapta-sync/ensure: install any missing triggers (superusers only). Migrations run after
// bootstrap; collections they create get triggers from the collection hooks, and the sidecar calls
// this on start and after each schema change as a safety net.
routerAdd("POST", "/api/hapta-sync/ensure", (e) => {
  require(`${__hooks}/hapta/changelog.js`).ensureAll(e.app);
  return e.json(200, { ok: true });
}, $apis.requireSuperuserAuth());

// POST /api/hapta-sync/prune: prune now (superusers only); used by tests and operators.
routerAdd("POST", "/api/hapta-sync/prune", (e) => {
  const upTo = require(`${__hooks}/hapta/changelog.js`).prune(e.app);
  return e.json(200, { prunedThrough: upTo });
}, $apis.requireSuperuserAuth());

// GET /api/hapta-sync/head: the log head and instance id (superusers only). A sidecar asks after each
// acknowledged write, so the writer's session knows which position a replica must have reached before
// it may answer that writer's reads (read-your-writes without waiting on the write itself).
// With ?pair=P (a read sent right behind the write that carried X-Hapta-Pair: P on the same connection),
// it answers only once that write's handler has returned, 409 otherwise (the sidecar then asks again).
routerAdd("GET", "/api/hapta-sync/head", (e) => {
  const log = require(`${__hooks}/hapta/changelog.js`);
  const pair = e.request.url.query().get("pair");
  if (pair && !log.takePair(e.app, pair)) return e.json(409, { message: "The paired write is not done." });
  return e.json(200, { instance: log.readMeta(e.app, "instance"), head: log.head(e.app) });
}, $apis.requireSuperuserAuth());

// GET /api/hapta-sync/planner-schema: the replicated tables' and indexes' SQL and planner statistics
// (superusers only), so the sidecar can plan PocketBase's statements as PocketBase's SQLite does.
routerAdd("GET", "/api/hapta-sync/planner-schema", (e) => {
  return e.json(200, require(`${__hooks}/hapta/changelog.js`).plannerSchema(e.app));
}, $apis.requireSuperuserAuth());
