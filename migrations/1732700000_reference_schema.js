// Hapta reference schema (a small social app): extends the default `users` auth collection
// and creates posts, comments, likes, follows, blocks and audit_log with their fields, indexes and API rules.
//
// Collection ids are fixed so relations can point at them; they equal what PocketBase itself
// would generate ("pbc_" + crc32(type + name)). `_pb_users_auth_` is the default users collection.

const USERS = "_pb_users_auth_";
const POSTS = "pbc_1125843985";
const COMMENTS = "pbc_533777971";
const LIKES = "pbc_2190274710";
const FOLLOWS = "pbc_3660641689";
const BLOCKS = "pbc_4194232374";
const AUDIT_LOG = "pbc_2462721645";

// Rules of the default `users` collection in a fresh PocketBase (restored by the down migration).
const USERS_DEFAULT_RULES = {
  listRule: "id = @request.auth.id",
  viewRule: "id = @request.auth.id",
  createRule: "",
  updateRule: "id = @request.auth.id",
  deleteRule: "id = @request.auth.id",
};

const USERS_ADDED_FIELDS = ["bio", "website", "internal_notes"];

const created = { name: "created", type: "autodate", onCreate: true, onUpdate: false };
const updated = { name: "updated", type: "autodate", onCreate: true, onUpdate: true };

migrate((app) => {
  // --- users: extra profile fields + rules ---------------------------------------------
  const users = app.findCollectionByNameOrId(USERS);
  users.fields.add(new TextField({ name: "bio", max: 500 }));
  users.fields.add(new URLField({ name: "website" }));
  users.fields.add(new TextField({ name: "internal_notes", hidden: true }));
  users.listRule = '@request.auth.id != ""';
  users.viewRule = "";
  users.createRule = "";
  users.updateRule = "id = @request.auth.id";
  users.deleteRule = "id = @request.auth.id";
  app.save(users);

  // --- posts ---------------------------------------------------------------------------
  app.save(new Collection({
    id: POSTS,
    name: "posts",
    type: "base",
    listRule: "published = true || author = @request.auth.id",
    // `coauthors.id ?= @request.auth.id` alone would admit anonymous callers to every post without
    // coauthors: PocketBase compares an empty auth id as `= '' OR IS NULL`, and an empty relation
    // joins as NULL. Hence the explicit sign-in check.
    viewRule: "published = true || author = @request.auth.id || (@request.auth.id != \"\" && coauthors.id ?= @request.auth.id)",
    createRule: '@request.auth.id != "" && @request.body.author = @request.auth.id',
    updateRule: "author = @request.auth.id || (@request.auth.id != \"\" && coauthors.id ?= @request.auth.id)",
    deleteRule: "author = @request.auth.id",
    fields: [
      { name: "title", type: "text", required: true, max: 200 },
      { name: "body", type: "editor" },
      { name: "author", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "coauthors", type: "relation", collectionId: USERS, maxSelect: 5 },
      { name: "tags", type: "select", maxSelect: 3, values: ["news", "tech", "fun", "misc"] },
      { name: "category", type: "select", maxSelect: 1, values: ["a", "b", "c"] },
      { name: "published", type: "bool" },
      { name: "published_at", type: "date" },
      { name: "likes", type: "number", onlyInt: true, min: 0 },
      { name: "meta", type: "json", maxSize: 2000 },
      { name: "secret", type: "text", hidden: true },
      {
        name: "attachment", type: "file", maxSelect: 1, maxSize: 5 * 1024 * 1024,
        mimeTypes: ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"],
        thumbs: ["100x100", "0x50"],
      },
      { name: "private_doc", type: "file", maxSelect: 1, protected: true },
      created,
      updated,
    ],
    indexes: [
      "CREATE INDEX `idx_posts_created` ON `posts` (`created`)",
      "CREATE INDEX `idx_posts_author` ON `posts` (`author`)",
    ],
  }));

  // --- comments ------------------------------------------------------------------------
  app.save(new Collection({
    id: COMMENTS,
    name: "comments",
    type: "base",
    listRule: "post.published = true || post.author = @request.auth.id",
    viewRule: "post.published = true || post.author = @request.auth.id",
    createRule: '@request.auth.id != "" && @request.body.author = @request.auth.id && ' +
      "(@request.body.post.published = true || @request.body.post.author = @request.auth.id)",
    updateRule: "author = @request.auth.id",
    deleteRule: "author = @request.auth.id || post.author = @request.auth.id",
    fields: [
      { name: "post", type: "relation", collectionId: POSTS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "author", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "text", type: "text", required: true, min: 1, max: 2000 },
      created,
      updated,
    ],
    indexes: ["CREATE INDEX `idx_comments_post` ON `comments` (`post`)"],
  }));

  // --- likes ---------------------------------------------------------------------------
  app.save(new Collection({
    id: LIKES,
    name: "likes",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: '@request.auth.id != "" && @request.body.user = @request.auth.id',
    updateRule: null,
    deleteRule: "user = @request.auth.id",
    fields: [
      { name: "post", type: "relation", collectionId: POSTS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "user", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      created,
    ],
    indexes: [
      "CREATE UNIQUE INDEX `idx_likes_post_user` ON `likes` (`post`, `user`)",
      "CREATE INDEX `idx_likes_user` ON `likes` (`user`)",
    ],
  }));

  // --- follows -------------------------------------------------------------------------
  app.save(new Collection({
    id: FOLLOWS,
    name: "follows",
    type: "base",
    listRule: "follower = @request.auth.id || following = @request.auth.id",
    viewRule: "follower = @request.auth.id || following = @request.auth.id",
    createRule: '@request.auth.id != "" && @request.body.follower = @request.auth.id && ' +
      "@request.body.following != @request.auth.id",
    updateRule: null,
    deleteRule: "follower = @request.auth.id",
    fields: [
      { name: "follower", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "following", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      created,
    ],
    indexes: [
      "CREATE UNIQUE INDEX `idx_follows_follower_following` ON `follows` (`follower`, `following`)",
      "CREATE INDEX `idx_follows_following` ON `follows` (`following`)",
    ],
  }));

  // --- blocks --------------------------------------------------------------------------
  app.save(new Collection({
    id: BLOCKS,
    name: "blocks",
    type: "base",
    listRule: "blocker = @request.auth.id",
    viewRule: "blocker = @request.auth.id",
    createRule: "@request.auth.id != \"\" && @request.body.blocker = @request.auth.id",
    updateRule: null,
    deleteRule: "blocker = @request.auth.id",
    fields: [
      { name: "blocker", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      { name: "blocked", type: "relation", collectionId: USERS, required: true, maxSelect: 1, cascadeDelete: true },
      created,
    ],
    indexes: ["CREATE UNIQUE INDEX `idx_blocks_blocker_blocked` ON `blocks` (`blocker`, `blocked`)"],
  }));

  // --- audit_log (superuser only: every rule is null) ----------------------------------
  app.save(new Collection({
    id: AUDIT_LOG,
    name: "audit_log",
    type: "base",
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: "action", type: "select", maxSelect: 1, values: ["create", "update", "delete"] },
      { name: "actor", type: "relation", collectionId: USERS, required: false, maxSelect: 1, cascadeDelete: false },
      { name: "payload", type: "json" },
      created,
    ],
    indexes: [],
  }));
}, (app) => {
  // Delete in reverse dependency order (comments/likes reference posts).
  for (const id of [AUDIT_LOG, BLOCKS, FOLLOWS, LIKES, COMMENTS, POSTS]) {
    app.delete(app.findCollectionByNameOrId(id));
  }

  const users = app.findCollectionByNameOrId(USERS);
  for (const name of USERS_ADDED_FIELDS) {
    users.fields.removeByName(name);
  }
  users.listRule = USERS_DEFAULT_RULES.listRule;
  users.viewRule = USERS_DEFAULT_RULES.viewRule;
  users.createRule = USERS_DEFAULT_RULES.createRule;
  users.updateRule = USERS_DEFAULT_RULES.updateRule;
  users.deleteRule = USERS_DEFAULT_RULES.deleteRule;
  app.save(users);
});
