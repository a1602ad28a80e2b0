// Category pages list published posts of one category (plus the requester's own drafts, by the list
// rule). This index holds every column that query filters on, so the page's totalItems COUNT reads the
// index alone instead of every post.

migrate((app) => {
  const posts = app.findCollectionByNameOrId("posts");
  posts.indexes.push("CREATE INDEX `idx_posts_category` ON `posts` (`category`, `published`, `author`)");
  app.save(posts);
}, (app) => {
  const posts = app.findCollectionByNameOrId("posts");
  posts.indexes = posts.indexes.filter((i) => !i.includes("idx_posts_category"));
  app.save(posts);
});
