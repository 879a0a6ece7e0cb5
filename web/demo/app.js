// The demo page: sign in, see your grants, browse a place, upload to it.
// Plain DOM, no framework. Its configuration comes from config.json next to
// the page (web/README.md "Demo page").

import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  AuthError,
  CognitoAuth,
  CredbrokerError,
  CredentialBroker,
  NoAccessError,
  ReadOnlyError,
  expiresIn,
  explainS3Error,
} from '../src/index.js';
import { grantsSummary, setNames, signInWords } from './words.js';

/**
 * @typedef {object} Config
 * @property {string} apiUrl
 * @property {string} region
 * @property {string} userPoolClientId
 * @property {string} [userPoolId]  enables SRP sign-in
 * @property {'USER_SRP_AUTH' | 'USER_PASSWORD_AUTH'} [signInFlow] the preselected method (SRP when userPoolId is given)
 * @property {string} [awsEndpoint] one endpoint for Cognito and S3 (the local stack's moto); S3 then uses path-style URLs
 *
 * @typedef {import('../src/answer.js').Grant & {setIndex: number}} ShownGrant
 * @typedef {{bucket: string, root: string, prefix: string, access: 'read' | 'write', projects: string[]}} Location
 */

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/**
 * @param {string} id
 * @param {string} [text] shown when given, hidden when not
 */
function say(id, text) {
  const el = $(id);
  el.textContent = text ?? '';
  el.hidden = !text;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} [attrs]
 * @param {...(Node | string)} children
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/**
 * An inline SVG icon (no emoji: without an emoji font those render as an
 * empty box). 16x16 paths drawn in currentColor.
 * @param {'folder' | 'file'} kind
 */
function icon(kind) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', `icon ${kind}`);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('data-testid', `${kind}-icon`);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute(
    'd',
    kind === 'folder'
      ? 'M1 3.5A1.5 1.5 0 0 1 2.5 2h3.6l1.5 1.5h5.9A1.5 1.5 0 0 1 15 5v7.5a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 1 12.5z'
      : 'M3.5 1h6L13 4.5v9a1.5 1.5 0 0 1-1.5 1.5h-8A1.5 1.5 0 0 1 2 13.5v-11A1.5 1.5 0 0 1 3.5 1zm5.5 1v3h3z',
  );
  svg.append(path);
  return svg;
}

/** @param {number} n */
const size = (n) =>
  n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
/** @param {Date} d */
const time = (d) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
/** @param {Date} d */
const dateTime = (d) =>
  d.toLocaleString([], { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** @returns {Promise<Config>} */
async function loadConfig() {
  const res = await fetch('config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const c = await res.json();
  for (const f of ['apiUrl', 'region', 'userPoolClientId']) {
    if (typeof c[f] !== 'string' || c[f] === '') throw new Error(`config.json lacks "${f}"`);
  }
  if (![undefined, 'USER_SRP_AUTH', 'USER_PASSWORD_AUTH'].includes(c.signInFlow)) {
    throw new Error(`config.json: signInFlow must be USER_SRP_AUTH or USER_PASSWORD_AUTH`);
  }
  if (c.signInFlow === 'USER_SRP_AUTH' && !c.userPoolId) throw new Error('config.json: USER_SRP_AUTH needs userPoolId');
  return c;
}

/** @type {Config} */
let config;
/** @type {import('../src/cognito.js').CognitoSession | undefined} */
let session;
/** @type {CredentialBroker | undefined} */
let broker;
/** @type {Location | undefined} */
let here;

/** @param {Location} loc */
function s3For(loc, key = loc.prefix, access = /** @type {'read' | 'write' | undefined} */ (undefined)) {
  if (!broker) throw new AuthError('Not signed in.');
  const client = new S3Client({
    region: config.region,
    ...(config.awsEndpoint ? { endpoint: config.awsEndpoint, forcePathStyle: true } : {}),
    credentials: broker.credentialsFor(loc.bucket, { key: key === '' ? undefined : key, access }),
    // No flexible checksums: fewer headers to allow in the bucket's CORS rules.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  client.middlewareStack.use(broker.s3Plugin());
  return client;
}

/**
 * Where an S3 request went, for explainS3Error's words.
 * @param {Location} loc
 * @param {string} key
 */
function s3Place(loc, key) {
  return {
    bucket: loc.bucket,
    key,
    projects: loc.projects,
    endpoint: config.awsEndpoint,
    origin: window.location.origin,
  };
}

function showSignedOut() {
  document.body.dataset.state = 'signed-out';
  $('session').hidden = true;
  $('signin').hidden = false;
  $('grants-section').hidden = true;
  $('browser').hidden = true;
  input('password').value = '';
}

async function showSignedIn() {
  document.body.dataset.state = 'signed-in';
  $('signin').hidden = true;
  $('session').hidden = false;
  const claims = session?.claims() ?? {};
  $('user-name').textContent = String(claims.username ?? session?.username ?? '');
  $('user-name').title = `user id ${claims.sub ?? 'unknown'}`;
  $('grants-section').hidden = false;
  await showGrants();
}

/**
 * The message for an error; a lost sign-in also returns to the sign-in form.
 * @param {unknown} err
 */
function explain(err) {
  const text = err instanceof Error ? err.message : String(err);
  if (err instanceof AuthError) {
    signOut();
    say('signin-error', text);
  }
  return text;
}

async function showGrants() {
  const table = $('grants');
  const body = /** @type {HTMLElement} */ (table.querySelector('tbody'));
  table.dataset.loaded = 'false';
  say('grants-error');
  try {
    const answer = await /** @type {CredentialBroker} */ (broker).resources();
    const grants = /** @type {ShownGrant[]} */ (await /** @type {CredentialBroker} */ (broker).grants());
    const sets = answer.credentialSets;
    const names = setNames(sets);
    say('grants-summary', grantsSummary(grants.length, sets.length, time(answer.expiration)));
    // One set is all an end user needs to know nothing about.
    const setColumn = sets.length > 1;
    $('grants-set-column').hidden = !setColumn;
    body.replaceChildren(
      ...grants.map((g) => {
        const set = sets[g.setIndex];
        const browse = h('button', { type: 'button', class: 'small', 'data-testid': 'browse' }, 'Browse');
        browse.addEventListener('click', () =>
          browseTo({ bucket: g.bucket, root: g.prefix, prefix: g.prefix, access: g.access, projects: g.projects }),
        );
        return h(
          'tr',
          {
            'data-testid': 'grant',
            'data-bucket': g.bucket,
            'data-prefix': g.prefix,
            'data-access': g.access,
            'data-set': String(g.setIndex),
            'data-set-name': names[g.setIndex],
            'data-expires-at': g.expiresAt ? g.expiresAt.toISOString() : '',
          },
          h('td', {}, h('code', {}, g.bucket)),
          h('td', {}, g.prefix === '' ? 'whole bucket' : h('code', {}, g.prefix)),
          h('td', { class: g.access }, g.access === 'write' ? 'read and write' : 'read only'),
          h('td', {}, g.projects.join(', ')),
          g.expiresAt
            ? h(
                'td',
                { class: 'ends', 'data-testid': 'grant-expiry', title: `until ${g.expiresAt.toISOString()}` },
                h('span', { class: 'soon', 'data-testid': 'grant-expires-in' }, expiresIn(g.expiresAt)),
                h('time', { datetime: g.expiresAt.toISOString() }, `on ${dateTime(g.expiresAt)}`),
              )
            : h('td', { class: 'ends', 'data-testid': 'grant-expiry' }, 'no end'),
          ...(setColumn
            ? [
                h(
                  'td',
                  {
                    'data-testid': 'grant-set',
                    title: `access key ${set.accessKeyId}, valid until ${set.expiration.toISOString()}`,
                  },
                  names[g.setIndex],
                ),
              ]
            : []),
          h('td', {}, browse),
        );
      }),
    );
  } catch (err) {
    body.replaceChildren();
    const e = /** @type {any} */ (err);
    $('grants-error').dataset.code = e?.code ?? 'error';
    say(
      'grants-error',
      err instanceof NoAccessError
        ? 'You have no access to any bucket yet: none of your projects grants one.'
        : explain(err),
    );
  } finally {
    table.dataset.loaded = 'true';
  }
}

/** @param {Location} loc */
async function browseTo(loc) {
  here = loc;
  $('browser').hidden = false;
  $('browser-location').textContent = `s3://${loc.bucket}/${loc.prefix}`;
  const badge = $('browser-access');
  badge.textContent = loc.access === 'write' ? 'read and write' : 'read only';
  badge.className = `badge ${loc.access}`;
  $('browser-up').hidden = loc.prefix === loc.root;
  const list = $('objects');
  list.dataset.loaded = 'false';
  list.dataset.location = `s3://${loc.bucket}/${loc.prefix}`;
  list.replaceChildren();
  say('objects-empty');
  say('browse-error');
  setUpload('', '');
  try {
    const out = await s3For(loc).send(
      new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: loc.prefix || undefined, Delimiter: '/', MaxKeys: 200 }),
    );
    if (here !== loc) return;
    const folders = (out.CommonPrefixes ?? []).map((p) => String(p.Prefix));
    const objects = (out.Contents ?? []).filter((o) => o.Key !== loc.prefix);
    for (const f of folders) {
      const open = h('button', { type: 'button' }, `${f.slice(loc.prefix.length)}`);
      open.addEventListener('click', () => browseTo({ ...loc, prefix: f }));
      list.append(h('li', { class: 'folder', 'data-testid': 'folder', 'data-prefix': f }, icon('folder'), open));
    }
    for (const o of objects) {
      const key = String(o.Key);
      list.append(
        h(
          'li',
          { 'data-testid': 'object', 'data-key': key },
          icon('file'),
          key.slice(loc.prefix.length),
          h('span', { class: 'size' }, size(o.Size ?? 0)),
        ),
      );
    }
    if (folders.length + objects.length === 0) say('objects-empty', 'Nothing here yet.');
    if (out.IsTruncated) list.append(h('li', { class: 'more' }, '… and more (the demo shows the first 200)'));
  } catch (err) {
    if (here !== loc) return;
    if (err instanceof CredbrokerError) {
      $('browse-error').dataset.code = err.code;
      say('browse-error', explain(err));
    } else {
      const problem = explainS3Error(err, { ...s3Place(loc, loc.prefix), action: 'list' });
      $('browse-error').dataset.code = problem.code;
      say('browse-error', problem.message);
    }
  } finally {
    if (here === loc) list.dataset.loaded = 'true';
  }
}

/**
 * @param {'' | 'ok' | 'refused' | 'error' | 'busy'} state
 * @param {string} text
 */
function setUpload(state, text) {
  const el = $('upload-status');
  el.dataset.state = state;
  el.textContent = text;
}

async function upload() {
  const loc = here;
  if (!loc) return;
  const file = input('upload-file').files?.[0];
  const name = file ? file.name : input('upload-name').value.trim();
  if (!name) {
    setUpload('error', 'Choose a file, or give the text object a name.');
    return;
  }
  if (name.startsWith('/') || name.split('/').includes('..')) {
    setUpload('error', 'The name may not start with "/" or contain "..".');
    return;
  }
  const key = loc.prefix + name;
  setUpload('busy', `Uploading s3://${loc.bucket}/${key} …`);
  try {
    await s3For(loc, key, 'write').send(
      new PutObjectCommand({
        Bucket: loc.bucket,
        Key: key,
        Body: file ?? input('upload-text').value,
        ContentType: file?.type || 'text/plain; charset=utf-8',
      }),
    );
    input('upload-file').value = '';
    await browseTo(loc); // the new object shows in the list
    setUpload('ok', `Uploaded s3://${loc.bucket}/${key}.`);
  } catch (err) {
    if (err instanceof ReadOnlyError) {
      setUpload('refused', `Not uploaded. ${err.message} Nothing was sent to S3.`);
    } else if (err instanceof NoAccessError) {
      setUpload('refused', `Not uploaded. ${err.message}`);
    } else if (err instanceof CredbrokerError) {
      setUpload('error', `Not uploaded: ${explain(err)}`);
    } else {
      const problem = explainS3Error(err, { ...s3Place(loc, key), action: 'upload' });
      setUpload(problem.code === 'access_denied' ? 'refused' : 'error', `Not uploaded. ${problem.message}`);
    }
  }
}

function signOut() {
  session?.signOut();
  session = undefined;
  broker = undefined;
  here = undefined;
  showSignedOut();
}

async function signIn() {
  say('signin-error');
  const button = /** @type {HTMLButtonElement} */ ($('signin-submit'));
  button.disabled = true;
  try {
    const auth = new CognitoAuth({
      clientId: config.userPoolClientId,
      userPoolId: config.userPoolId,
      region: config.region,
      endpoint: config.awsEndpoint,
    });
    const flow = /** @type {import('../src/cognito.js').SignInFlow} */ (
      /** @type {HTMLSelectElement} */ ($('signin-flow')).value
    );
    session = await auth.signIn(input('username').value.trim(), input('password').value, { flow });
    broker = new CredentialBroker({
      apiUrl: config.apiUrl,
      tokens: session,
      onPolicyChange: () => void showGrants(),
    });
    await showSignedIn();
  } catch (err) {
    const e = /** @type {any} */ (err);
    $('signin-error').dataset.code = e?.code ?? 'error';
    say(
      'signin-error',
      e?.code === 'NotAuthorizedException'
        ? 'Wrong username or password.'
        : err instanceof Error
          ? err.message
          : String(err),
    );
  } finally {
    button.disabled = false;
  }
}

async function main() {
  try {
    config = await loadConfig();
  } catch (err) {
    document.body.dataset.state = 'broken';
    say('config-error', `This page is not configured: ${err instanceof Error ? err.message : String(err)}.`);
    return;
  }
  const flow = /** @type {HTMLSelectElement} */ ($('signin-flow'));
  const words = signInWords(config);
  const [srp, password] = /** @type {HTMLOptionElement[]} */ ([...flow.options]);
  srp.textContent = words.srp;
  password.textContent = words.password;
  if (!config.userPoolId) srp.disabled = true;
  flow.value = config.signInFlow ?? (config.userPoolId ? 'USER_SRP_AUTH' : 'USER_PASSWORD_AUTH');
  const note = () => say('signin-flow-note', words.notes[/** @type {keyof typeof words.notes} */ (flow.value)]);
  flow.addEventListener('change', note);
  note();
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void signIn();
  });
  $('signout').addEventListener('click', signOut);
  $('grants-refresh').addEventListener('click', () => {
    broker?.invalidate();
    void showGrants();
  });
  $('browser-up').addEventListener('click', () => {
    if (!here) return;
    const parts = here.prefix.split('/').slice(0, -2);
    const up = parts.length ? `${parts.join('/')}/` : '';
    void browseTo({ ...here, prefix: up.length < here.root.length ? here.root : up });
  });
  $('upload-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void upload();
  });
  showSignedOut();
}

void main();
