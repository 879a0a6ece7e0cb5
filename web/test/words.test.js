// What the demo page says: sign-in methods as they are on the stack at hand,
// plain names for credential sets, and the grants' summary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grantsSummary, setNames, signInWords } from '../demo/words.js';

test('on AWS the password method says TLS, naming the Cognito endpoint', () => {
  const w = signInWords({ region: 'eu-west-1' });
  assert.equal(w.password, 'Password (sent to Cognito over TLS)');
  assert.match(w.notes.USER_PASSWORD_AUTH, /cognito-idp\.eu-west-1\.amazonaws\.com, encrypted with TLS/);
  assert.match(w.srp, /never leaves this page/);
});

test('on a plain-HTTP endpoint (the local stack) the password method says unencrypted, never TLS', () => {
  const w = signInWords({ region: 'us-east-1', awsEndpoint: 'http://127.0.0.1:4566' });
  assert.equal(w.password, 'Password (sent unencrypted, plain HTTP)');
  assert.match(w.notes.USER_PASSWORD_AUTH, /at 127\.0\.0\.1:4566 over plain HTTP, unencrypted/);
  assert.doesNotMatch(w.password + w.notes.USER_PASSWORD_AUTH, /TLS/);
});

test('an https endpoint override counts as TLS', () => {
  const w = signInWords({ region: 'us-east-1', awsEndpoint: 'https://cognito.example.test' });
  assert.equal(w.password, 'Password (sent to Cognito over TLS)');
});

/** @param {...string[]} projectsOfGrants */
const set = (...projectsOfGrants) => ({ grants: projectsOfGrants.map((projects) => ({ projects })) });

test('credential sets are named by their projects, never by number', () => {
  assert.deepEqual(setNames([set(['demo'], ['demo', 'archive'])]), ['projects demo, archive']);
  assert.deepEqual(setNames([set(['demo']), set(['archive'])]), ['project demo', 'project archive']);
  assert.deepEqual(setNames([set(['a'], ['b'], ['c'], ['d'])]), ['projects a, b, 2 more']);
});

test('sets that would share a name are told apart as parts', () => {
  assert.deepEqual(setNames([set(['big']), set(['small']), set(['big'])]), [
    'project big (part 1 of 2)',
    'project small',
    'project big (part 2 of 2)',
  ]);
});

test('the summary speaks of sets only when there are several', () => {
  assert.equal(
    grantsSummary(4, 1, '14:05'),
    '4 places. One set of temporary credentials reaches them all, until 14:05; the page fetches new ones before they run out.',
  );
  assert.match(grantsSummary(1, 1, '14:05'), /^1 place\. .* reaches it,/);
  assert.match(
    grantsSummary(90, 2, '14:05'),
    /^90 places, too many for one set .*: 2 sets, each named in the Credentials column/,
  );
});
