// Per-collection validators and hooks on writes: declared per collection name and action, run in order
// before the write is forwarded; each may reject (PocketBase-shaped answer) or replace the body.
import type { PbCollection } from '../../replica/schema.js';
import type { Authenticated } from '../sessions/manager.js';

export type WriteAction = 'create' | 'update' | 'delete';

export interface HookInput {
  /** The submitted fields (multipart: the text fields, files excluded); a copy the hook may keep. */
  body: Record<string, unknown>;
  /** The caller, or null when anonymous. */
  requester: Authenticated | null;
  collection: PbCollection;
  action: WriteAction;
  recordId?: string;
}

export interface HookReject { status?: number; message: string; data?: Record<string, unknown> }

export type HookResult = void | { body: Record<string, unknown> } | { reject: HookReject };

export type Hook = (input: HookInput) => Promise<HookResult>;

export type WriteHooks = Record<string, { create?: Hook[]; update?: Hook[]; delete?: Hook[] }>;

/** Runs the hooks of one write; the final body, or the first rejection. */
export async function runHooks(hooks: WriteHooks | undefined, input: HookInput): Promise<{ body: Record<string, unknown>; changed: boolean } | { reject: HookReject }> {
  const list = hooks?.[input.collection.name]?.[input.action] ?? [];
  let body = input.body;
  let changed = false;
  for (const hook of list) {
    const result = await hook({ ...input, body });
    if (!result) continue;
    if ('reject' in result) return { reject: result.reject };
    if ('body' in result && result.body && typeof result.body === 'object') {
      body = nullProto(result.body);
      changed = true;
    }
  }
  return { body, changed };
}

export function nullProto(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(obj)) out[k] = v;
  return out;
}
