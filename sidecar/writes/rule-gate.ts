// PocketBase evaluates a collection's create/update/delete rule before it validates the data: a write
// that fails the rule gets the rule's answer whatever its fields hold. So the sidecar may only answer
// a validation error itself when it knows the rule passes; this decides what it knows.
import { parseFilter, type FilterNode, type Operand } from '../filter/index.js';
import type { WriteAction } from './hooks.js';

export type RuleVerdict =
  /** Rules do not apply (superuser) or the rule is public: validation decides, as in PocketBase. */
  | 'passes'
  /** The rule certainly fails for this caller (e.g. it requires sign-in and there is none). */
  | 'fails'
  /** Superusers only: PocketBase answers 403 itself. */
  | 'superusers-only'
  /** Cannot tell here: an invalid write goes to PocketBase, which answers exactly. */
  | 'unknown';

export interface RuleContext {
  /** The signed-in caller's record id; null when anonymous. */
  authId: string | null;
  /** The submitted body (after hooks). */
  body: Record<string, unknown>;
  /** The stored record for update/delete; null for create. */
  record: Record<string, unknown> | null;
}

export function ruleVerdict(rule: string | null | undefined, superuser: boolean, ctx: RuleContext): RuleVerdict {
  if (superuser) return 'passes';
  if (rule === null || rule === undefined) return 'superusers-only';
  if (rule.trim() === '') return 'passes';
  if (ctx.authId === null && requiresSignIn(rule)) return 'fails';
  let tree: FilterNode;
  try {
    tree = parseFilter(rule, { maxLength: Infinity, maxExpressions: 10_000 });
  } catch {
    return 'unknown';
  }
  const v = evaluate(tree, ctx);
  return v === true ? 'passes' : v === false ? 'fails' : 'unknown';
}

type Tri = boolean | null;

/**
 * Three-valued evaluation of the small part of the rule language whose meaning is certain here:
 * `=`/`!=` between `@request.auth.id`, `@request.body.<field>` (string values only), plain fields of the
 * stored record (update/delete) and string literals, combined with && and ||. Anything else is unknown.
 */
function evaluate(n: FilterNode, ctx: RuleContext): Tri {
  if (n.kind === 'and') {
    let out: Tri = true;
    for (const item of n.items) {
      const v = evaluate(item, ctx);
      if (v === false) return false;
      if (v === null) out = null;
    }
    return out;
  }
  if (n.kind === 'or') {
    let out: Tri = false;
    for (const item of n.items) {
      const v = evaluate(item, ctx);
      if (v === true) return true;
      if (v === null) out = null;
    }
    return out;
  }
  if (n.op !== '=' && n.op !== '!=') return null;
  const a = valueOf(n.left, ctx);
  const b = valueOf(n.right, ctx);
  if (a === null || b === null) return null;
  return n.op === '=' ? a === b : a !== b;
}

/** A certain string value of an operand, or null when it is not certain. */
function valueOf(o: Operand, ctx: RuleContext): string | null {
  if (o.kind === 'string') return o.value;
  if (o.kind !== 'identifier' || o.modifier) return null;
  if (o.name === '@request.auth.id') return ctx.authId ?? '';
  if (o.path.length === 3 && o.path[0] === '@request' && o.path[1] === 'body') {
    const v = ctx.body[o.path[2]];
    return typeof v === 'string' && v !== '' ? v : null;
  }
  if (o.path.length === 1 && !o.name.startsWith('@') && ctx.record) {
    const v = ctx.record[o.name];
    return typeof v === 'string' && v !== '' ? v : null;
  }
  return null;
}

/** Whether the rule is a conjunction with a top-level `@request.auth.id != ""`. */
export function requiresSignIn(rule: string): boolean {
  let tree: FilterNode;
  try {
    tree = parseFilter(rule, { maxLength: Infinity, maxExpressions: 10_000 });
  } catch {
    return false;
  }
  const conjuncts = tree.kind === 'and' ? tree.items : [tree];
  return conjuncts.some((n) => n.kind === 'cmp' && n.op === '!=' && (
    (isAuthId(n.left) && isEmptyString(n.right)) || (isAuthId(n.right) && isEmptyString(n.left))));
}

function isAuthId(n: { kind: string; name?: string }): boolean {
  return n.kind === 'identifier' && n.name === '@request.auth.id';
}

function isEmptyString(n: { kind: string; value?: unknown }): boolean {
  return n.kind === 'string' && n.value === '';
}

/** PocketBase's answer to a write whose rule fails. */
export function ruleFailure(action: WriteAction): { status: number; message: string } {
  return action === 'create'
    ? { status: 400, message: 'Failed to create record.' }
    : { status: 404, message: "The requested resource wasn't found." };
}
