// Public entry of the read path: answers PocketBase's record list/view API from the replica with
// PocketBase's access rules, falling back to PocketBase for anything it cannot answer with certainty.
export { createReadRoutes, type ReadRoutesOptions } from './routes.js';
export type { Requester } from './request.js';
