// Where records lists run (sidecar/reads/placement.ts): shapes that ignore values, a cost from measured
// runs, the move to the main thread and back. The answers themselves are checked against PocketBase in
// read-threads.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blanked, ReadPlacement, shapeOf } from '../sidecar/reads/placement.js';

describe('list shapes', () => {
  it('blank filter and sort values, keep what decides the cost', () => {
    const a = shapeOf('comments', { filter: "post = 'abc' && n > 3", sort: '-created', perPage: '20', expand: 'author' });
    const b = shapeOf('comments', { filter: 'post = "x\\"y" && n > 12.5', sort: '-created', perPage: '20', expand: 'author' });
    assert.equal(a, b);
    assert.notEqual(a, shapeOf('comments', { filter: "post = 'abc' && n > 3", sort: '-created', perPage: '500', expand: 'author' }));
    assert.notEqual(a, shapeOf('likes', { filter: "post = 'abc' && n > 3", sort: '-created', perPage: '20', expand: 'author' }));
    assert.notEqual(a, shapeOf('comments', { filter: "post.author = 'abc' && n > 3", sort: '-created', perPage: '20', expand: 'author' }));
    // Digits inside names are names.
    assert.equal(blanked('field2 = 2 && @request.auth.x1 = "1"'), 'field2 = ? && @request.auth.x1 = ?');
  });

  it('take hostile text in one pass, and keep none too long to hold', () => {
    assert.equal(blanked("'unterminated \\' \\"), '?');
    const hostile = "\\'".repeat(50_000);
    assert.equal(typeof blanked(`'${hostile}`), 'string');
    assert.equal(shapeOf('posts', { filter: 'a = 1 || '.repeat(200) }), null);
  });
});

describe('read placement', () => {
  it('sends a shape to a thread until it is measured, then where it is cheaper, and back', () => {
    const placed: boolean[] = [];
    const p = new ReadPlacement(0.4, (here) => placed.push(here));
    const s = 'likes\u0000perPage=1';
    for (let i = 0; i < 4; i++) {
      assert.equal(p.here(s), false, 'unmeasured: a thread');
      p.record(s, 0.1);
    }
    assert.equal(p.here(s), true, 'measured cheap: the main thread');
    // Slower now, but under twice the bound: stays.
    for (let i = 0; i < 16; i++) p.record(s, 0.7);
    assert.equal(p.here(s), true);
    // Dearer than twice the bound: back to the threads.
    for (let i = 0; i < 16; i++) p.record(s, 5);
    assert.equal(p.here(s), false);
    assert.equal(p.costMs(s), 5);
    assert.equal(p.here(null), false, 'a shape too long to keep: a thread');
    assert.deepEqual(placed.slice(0, 5), [false, false, false, false, true]);
  });

  it('takes the lower quartile, so a few runs that waited for a core do not move a cheap shape', () => {
    const p = new ReadPlacement(0.4);
    const s = 'x';
    for (let i = 0; i < 16; i++) p.record(s, i % 4 === 0 ? 30 : 0.2);
    assert.equal(p.here(s), true);
  });

  it('0 keeps every list on the threads', () => {
    const p = new ReadPlacement(0);
    for (let i = 0; i < 16; i++) p.record('x', 0.01);
    assert.equal(p.here('x'), false);
  });
});
