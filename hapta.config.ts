// An example user config module, for the reference schema (migrations/): the ranking profiles served at
// /api/hapta/feeds/{name} and the hooks run on writes before they are validated and forwarded. Copy it
// for your schema and point HAPTA_CONFIG_MODULE at the copy; without that option the sidecar uses these
// same reference profiles and no hooks.
import { REFERENCE_FEEDS, type UserModule } from './config.js';

const config: UserModule = {
  feeds: REFERENCE_FEEDS,
  writeHooks: {
    // Titles are stored trimmed; an empty one is refused as PocketBase refuses a blank required field.
    posts: {
      create: [async ({ body }) => {
        if (typeof body.title !== 'string') return;
        const title = body.title.trim();
        if (title === '') return { reject: { status: 400, message: 'Failed to create record.', data: { title: { code: 'validation_required', message: 'Cannot be blank.' } } } };
        return { body: { ...body, title } };
      }],
    },
  },
};

export default config;
