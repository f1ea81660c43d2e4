// The weir console: a page `weir serve` serves at `/`, talking to the same API as the CLI
// with the token the operator signs in with. The token lives in this tab's session storage
// and goes out only as the bearer token: never in a URL, never in a cookie.

const KEY = 'weir-token';
const WINDOW_MS = 15 * 60 * 1000; // the charts' span
const $ = (id) => document.getElementById(id);

let mode = null; // 'tenant' or 'admin', once signed in
let pipelines = new Map(); // name -> the latest status
let history = new Map(); // name -> [{at, records, bytes}] totals seen, for the rates
let sortBy = { key: 'name', up: true };
let stream = null; // the live updates' AbortController

// ---- the API -------------------------------------------------------------------------

class Refused extends Error {}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    offline(true);
    throw e;
  }
  offline(false);
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (r.status === 401) throw new Refused(data?.error ?? 'the server refused this token');
  if (!r.ok) throw new Error(data?.error ?? `${r.status}`);
  return data;
}

function offline(is) {
  $('offline').hidden = !is;
}

// ---- signing in ----------------------------------------------------------------------

let tenantName = null;

async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  const who = await api('GET', '/v1/whoami');
  mode = who.role;
  tenantName = who.tenant ?? null;
}

function signOut() {
  sessionStorage.removeItem(KEY);
  stream?.abort();
  mode = null;
  pipelines = new Map();
  history = new Map();
  location.hash = '';
  show();
}

// ---- live updates ----------------------------------------------------------------------

/** Reads the server's event stream (with the bearer header, which EventSource cannot
 * send), and reconnects with a banner while the server is away. */
async function watch() {
  stream?.abort();
  const controller = new AbortController();
  stream = controller;
  let wait = 500;
  while (!controller.signal.aborted) {
    try {
      const r = await fetch('/v1/events', {
        headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
        signal: controller.signal,
      });
      if (r.status === 401) return signOut();
      if (!r.ok) throw new Error(`${r.status}`);
      offline(false);
      wait = 500;
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trim())
            .join('\n');
          if (data) received(JSON.parse(data));
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    offline(true);
    await new Promise((done) => setTimeout(done, wait));
    wait = Math.min(wait * 2, 5000);
  }
}

function received(event) {
  const now = Date.now();
  const seen = new Set();
  for (const p of event.pipelines) {
    seen.add(p.name);
    // A pipeline seen for the first time: its chart starts from the server's 15 minutes.
    if (!pipelines.has(p.name)) seed(p.name).catch(() => {});
    pipelines.set(p.name, p);
    const h = history.get(p.name) ?? [];
    h.push({ at: now, records: p.records_out ?? 0, bytes: p.bytes_in ?? 0 });
    while (h.length && h[0].at < now - WINDOW_MS) h.shift();
    history.set(p.name, h);
  }
  for (const name of [...pipelines.keys()]) if (!seen.has(name)) pipelines.delete(name);
  render();
}

/** Records per second over the last samples (a few seconds), or 0. */
function rate(name, field) {
  const h = history.get(name) ?? [];
  if (h.length < 2) return 0;
  const last = h[h.length - 1];
  const first = h[Math.max(0, h.length - 6)];
  const secs = (last.at - first.at) / 1000;
  return secs > 0 ? Math.max(0, (last[field] - first[field]) / secs) : 0;
}

/** Seeds a pipeline's chart with the server's last 15 minutes. */
async function seed(name) {
  const { samples } = await api('GET', `/v1/pipelines/${encodeURIComponent(name)}/series`);
  const live = history.get(name) ?? [];
  const first = live[0]?.at ?? Infinity;
  const old = samples
    .filter((s) => s.at_ms < first)
    .map((s) => ({ at: s.at_ms, records: s.records_out, bytes: s.bytes_in }));
  history.set(name, [...old, ...live]);
}

// ---- rendering ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';

/** A line of per-second rates from cumulative totals. */
function chart(name, cls, label) {
  const h = history.get(name) ?? [];
  const points = [];
  for (let i = 1; i < h.length; i++) {
    const secs = (h[i].at - h[i - 1].at) / 1000;
    if (secs > 0) points.push([h[i].at, Math.max(0, (h[i].records - h[i - 1].records) / secs)]);
  }
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('viewBox', '0 0 300 60');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const now = Date.now();
  const top = Math.max(1, ...points.map((p) => p[1]));
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute(
    'points',
    points.map(([at, v]) => `${(300 * (at - (now - WINDOW_MS))) / WINDOW_MS},${58 - (56 * v) / top}`).join(' '),
  );
  svg.append(line);
  return svg;
}

const number = (n) => (n ?? 0).toLocaleString('en');
const bytes = (n) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  n = n ?? 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const age = (ms) => (ms === null || ms === undefined ? '—' : ms < 1000 ? 'now' : `${Math.round(ms / 1000)} s`);
const versions = (p) =>
  [p.pinned.source, ...(p.pinned.transforms ?? []), p.pinned.sink].map((r) => `${r.name}@${r.version}`).join(' → ');
const stateOf = (p) => p.state ?? (p.desired === 'paused' ? 'paused' : 'starting');

const COLUMNS = [
  ['name', 'Pipeline', (p) => p.name],
  ['state', 'State', stateOf],
  ['rate', 'Records/s', (p) => rate(p.name, 'records'), true],
  ['bytes', 'Bytes in/s', (p) => rate(p.name, 'bytes'), true],
  ['records_out', 'Records out', (p) => p.records_out ?? 0, true],
  ['age', 'Checkpoint age', (p) => p.checkpoint_age_ms ?? Infinity, true],
  ['dead', 'Dead letters', (p) => p.dead_letters ?? 0, true],
  ['restarts', 'Restarts', (p) => p.restarts ?? 0, true],
  ['cpu', 'CPU s', (p) => (p.cpu_ns ?? 0) / 1e9, true],
  ['memory', 'Memory', (p) => (p.source_memory ?? 0) + (p.sink_memory ?? 0) + (p.transform_memory ?? 0), true],
];

/** The cells of a pipeline's row after its name: [text, class] pairs, or a node. */
function cells(p) {
  return [
    [stateOf(p), `state state-${stateOf(p)}`],
    [number(Math.round(rate(p.name, 'records'))), 'num'],
    [bytes(rate(p.name, 'bytes')), 'num'],
    [number(p.records_out), 'num', 'records_out'],
    [age(p.checkpoint_age_ms), 'num'],
    [number(p.dead_letters), 'num'],
    [number(p.restarts), 'num'],
    [((p.cpu_ns ?? 0) / 1e9).toFixed(1), 'num'],
    [bytes(COLUMNS[9][2](p)), 'num'],
    chart(p.name, 'spark', `${p.name}: records per second, last 15 minutes`),
    [versions(p), ''],
  ];
}

function fill(td, cell) {
  if (cell instanceof Node) {
    td.replaceChildren(cell);
    return;
  }
  const [text, cls, field] = cell;
  if (td.textContent !== text) td.textContent = text;
  if (td.className !== cls) td.className = cls;
  if (field) td.dataset.field = field;
}

/** The table's rows, updated in place: a row, a link or a button under the pointer is the
 * same element from one second to the next, so a click is never lost to a re-render. */
function updatePipelines() {
  const table = $('pipelines');
  if (!table) return;
  const filter = $('filter-name').value;
  const state = $('filter-state').value;
  const column = COLUMNS.find((c) => c[0] === sortBy.key);
  const rows = [...pipelines.values()]
    .filter((p) => p.name.includes(filter) && (!state || stateOf(p) === state))
    .sort((a, b) => {
      const [x, y] = [column[2](a), column[2](b)];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sortBy.up ? order : -order;
    });
  for (const th of table.querySelectorAll('thead th[data-key]')) {
    if (th.dataset.key === sortBy.key) th.setAttribute('aria-sort', sortBy.up ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
  const body = table.tBodies[0];
  const existing = new Map([...body.rows].map((tr) => [tr.dataset.pipeline, tr]));
  rows.forEach((p, i) => {
    let tr = existing.get(p.name);
    const row = cells(p);
    if (!tr) {
      tr = el('tr', { 'data-pipeline': p.name }, el('td', {}, el('a', { href: `#/pipelines/${encodeURIComponent(p.name)}` }, p.name)));
      for (const _ of row) tr.append(el('td'));
    }
    row.forEach((cell, c) => fill(tr.cells[c + 1], cell));
    existing.delete(p.name);
    if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] ?? null);
  });
  for (const tr of existing.values()) tr.remove();
  table.caption.textContent = `${rows.length} of ${pipelines.size} pipelines, live`;
}

function pipelinesView() {
  const filters = el(
    'div',
    { class: 'filters' },
    el('label', {}, 'Name contains', el('input', { id: 'filter-name', type: 'search', oninput: updatePipelines })),
    el(
      'label',
      {},
      'State',
      el(
        'select',
        { id: 'filter-state', onchange: updatePipelines },
        ['', 'running', 'paused', 'backoff', 'failed', 'finished'].map((s) => el('option', { value: s }, s || 'any')),
      ),
    ),
  );
  const head = el(
    'tr',
    {},
    COLUMNS.map(([key, label, , num]) =>
      el(
        'th',
        { scope: 'col', class: num ? 'num' : undefined, 'data-key': key },
        el(
          'button',
          {
            type: 'button',
            onclick: () => {
              sortBy = { key, up: sortBy.key === key ? !sortBy.up : true };
              updatePipelines();
            },
          },
          label,
        ),
      ),
    ),
    el('th', { scope: 'col' }, 'Last 15 min'),
    el('th', { scope: 'col' }, 'Versions'),
  );
  return [
    el('h2', {}, 'Pipelines'),
    filters,
    el('table', { id: 'pipelines' }, el('caption', { class: 'muted' }), el('thead', {}, head), el('tbody')),
  ];
}

const DEAD_PAGE = 20;
let detail = { name: null, history: [], logs: [], plugins: [], dead: null, deadSkip: 0, message: '' };

async function loadDetail(name) {
  const quoted = encodeURIComponent(name);
  const [h, logs, plugins, dead] = await Promise.all([
    api('GET', `/v1/pipelines/${quoted}/history`),
    api('GET', `/v1/pipelines/${quoted}/logs?limit=50`),
    api('GET', '/v1/plugins'),
    api('GET', `/v1/pipelines/${quoted}/dead-letters?skip=${detail.deadSkip}&limit=${DEAD_PAGE}`),
  ]);
  await seed(name).catch(() => {});
  detail = { ...detail, name, history: h.history, logs: logs.lines, plugins, dead };
  updateDetail(name);
}

/** Fills what a pipeline's page loads (versions to pick, dead letters, history, logs) into
 * the page in place: its buttons stay the same elements, so a click is never lost. */
function updateDetail(name) {
  const p = pipelines.get(name);
  if (!p || !$('more')) return render(true);
  for (const [side, ref] of [['source', p.pinned.source], ['sink', p.pinned.sink]]) {
    const versions = detail.plugins.filter((v) => v.name === ref.name).map((v) => v.version);
    $(`upgrade-${side}`).replaceChildren(
      ...versions.map((v) => el('option', { value: v, selected: v === ref.version }, `${ref.name}@${v}`)),
    );
  }
  $('message').textContent = detail.message;
  $('more').replaceChildren(...pipelineMore(name, p));
}

function deadLettersView(name) {
  const d = detail.dead;
  if (!d) return [el('p', { class: 'muted' }, 'Loading…')];
  if (d.dead_letters === null) return [el('p', {}, `They go to the Kafka topic ${d.store.kafka_topic}: read them there.`)];
  if (!d.store) return [el('p', { class: 'muted' }, 'The pipeline has no dead-letter destination.')];
  const page = (skip) => {
    detail.deadSkip = Math.max(0, skip);
    loadDetail(name);
  };
  const clip = (v) => (v === null || v === undefined ? '—' : v.length > 120 ? `${v.slice(0, 120)}…` : v);
  return [
    el(
      'table',
      { id: 'dead-letters' },
      el('caption', { class: 'muted' }, `newest first, from ${d.store.dir}`),
      el('thead', {}, el('tr', {}, ['Plugin', 'Reason', 'Key', 'Value'].map((h) => el('th', { scope: 'col' }, h)))),
      el(
        'tbody',
        {},
        d.dead_letters.map((l) =>
          el('tr', {}, el('td', {}, l.plugin), el('td', {}, l.reason), el('td', {}, el('code', {}, clip(l.key))), el('td', {}, el('code', {}, clip(l.value)))),
        ),
      ),
    ),
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'button', id: 'dead-newer', disabled: detail.deadSkip === 0, onclick: () => page(detail.deadSkip - DEAD_PAGE) }, 'Newer'),
      el('button', { type: 'button', id: 'dead-older', disabled: !d.more, onclick: () => page(detail.deadSkip + DEAD_PAGE) }, 'Older'),
    ),
  ];
}

async function act(name, what, body) {
  try {
    if (what === 'delete') await api('DELETE', `/v1/pipelines/${encodeURIComponent(name)}`);
    else await api('POST', `/v1/pipelines/${encodeURIComponent(name)}/${what}`, body ?? {});
    detail.message = `${what}: done`;
    if (what === 'delete') location.hash = '#/pipelines';
    else await loadDetail(name);
  } catch (e) {
    detail.message = `${what}: ${e.message}`;
    updateDetail(name);
  }
}

/** What changes every second on a pipeline's page: no control is in it. */
function pipelineLive(p) {
  return [
    el(
      'dl',
      { class: 'facts' },
      el('dt', {}, 'State'),
      el('dd', { class: `state state-${stateOf(p)}`, id: 'state' }, stateOf(p)),
      el('dt', {}, 'Asked'),
      el('dd', {}, p.desired),
      el('dt', {}, 'Versions'),
      el('dd', {}, versions(p)),
      el('dt', {}, 'Records in / out'),
      el('dd', {}, `${number(p.records_in)} / ${number(p.records_out)}`),
      el('dt', {}, 'Checkpoint'),
      el('dd', {}, el('code', {}, p.checkpoint ?? 'none'), ` (${age(p.checkpoint_age_ms)} ago)`),
      el('dt', {}, 'Restarts, failures'),
      el('dd', {}, `${number(p.restarts)}, ${number(p.failures)}`),
      el('dt', {}, 'Memory'),
      el('dd', {}, `source ${bytes(p.source_memory)}, transforms ${bytes(p.transform_memory)}, sink ${bytes(p.sink_memory)}`),
    ),
    el('h3', {}, 'Last error'),
    p.last_error ? el('pre', { class: 'error', id: 'last-error' }, p.last_error) : el('p', { class: 'muted' }, 'None.'),
    el('h3', {}, 'Records per second, last 15 minutes'),
    chart(p.name, 'chart', `${p.name}: records per second, last 15 minutes`),
  ];
}

function updatePipeline(name) {
  const p = pipelines.get(name);
  const live = $('live');
  if (!p || !live) return;
  live.replaceChildren(...pipelineLive(p));
  const paused = p.desired === 'paused';
  $('pause').hidden = paused;
  $('resume').hidden = !paused;
}

function pipelineView(name) {
  const p = pipelines.get(name);
  if (!p) return [el('h2', {}, name), el('p', {}, 'No such pipeline (or not yet loaded).')];
  if (detail.name !== name) {
    detail = { name, history: [], logs: [], plugins: [], dead: null, deadSkip: 0, message: '' };
    loadDetail(name).catch((e) => {
      detail.message = e.message;
    });
  }
  const picker = (side) => el('label', {}, `${side} version `, el('select', { id: `upgrade-${side}` }));
  const paused = p.desired === 'paused';
  const confirmDelete = el(
    'dialog',
    { id: 'confirm-delete', 'aria-labelledby': 'confirm-title' },
    el('h3', { id: 'confirm-title' }, `Delete ${name}?`),
    el('p', {}, 'It stops, and its checkpoint and history are forgotten.'),
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'button', class: 'danger', id: 'confirm-yes', onclick: () => act(name, 'delete') }, 'Delete'),
      el('button', { type: 'button', onclick: () => $('confirm-delete').close() }, 'Cancel'),
    ),
  );
  return [
    el('h2', {}, `Pipeline ${name}`),
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'button', id: 'pause', hidden: paused, onclick: () => act(name, 'pause') }, 'Pause'),
      el('button', { type: 'button', id: 'resume', hidden: !paused, onclick: () => act(name, 'resume') }, 'Resume'),
      picker('source'),
      picker('sink'),
      el(
        'button',
        {
          type: 'button',
          id: 'upgrade',
          onclick: () =>
            act(name, 'upgrade', {
              source_version: Number($('upgrade-source').value),
              sink_version: Number($('upgrade-sink').value),
            }),
        },
        'Move to these versions',
      ),
      el('button', { type: 'button', class: 'danger', id: 'delete', onclick: () => $('confirm-delete').showModal() }, 'Delete…'),
      el('span', { id: 'message', role: 'status' }, detail.message),
    ),
    confirmDelete,
    el('section', { id: 'live', 'aria-label': 'Live figures' }, pipelineLive(p)),
    el('section', { id: 'more', 'aria-label': 'Dead letters, history, logs and definition' }, pipelineMore(name, p)),
  ];
}

/** What a pipeline's page loads once (and again after an action): dead letters, history,
 * recent logs, the definition. */
function pipelineMore(name, p) {
  return [
    el('h3', {}, 'Dead letters'),
    ...deadLettersView(name),
    el('h3', {}, 'History'),
    el(
      'table',
      { id: 'history' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'When'), el('th', { scope: 'col' }, 'What'), el('th', { scope: 'col' }, 'Detail'))),
      el(
        'tbody',
        {},
        detail.history
          .slice()
          .reverse()
          .map((e) =>
            el('tr', {}, el('td', {}, new Date(e.at_ms).toLocaleString()), el('td', {}, e.action), el('td', {}, el('code', {}, JSON.stringify(e.detail)))),
          ),
      ),
    ),
    el('h3', {}, 'Recent log lines'),
    el('pre', {}, detail.logs.map((l) => `${new Date(l.at_ms).toISOString()} ${l.level} ${l.message}`).join('\n') || '(none)'),
    el('h3', {}, 'Definition'),
    el('pre', {}, JSON.stringify(p.definition, null, 2)),
  ];
}

let plugins = null;

function pluginsView() {
  if (plugins === null) {
    plugins = [];
    api('GET', '/v1/plugins').then((list) => {
      plugins = list;
      render(true);
    });
  }
  const users = (v) =>
    [...pipelines.values()]
      .filter((p) => [p.pinned.source, ...(p.pinned.transforms ?? []), p.pinned.sink].some((r) => r.name === v.name && r.version === v.version))
      .map((p) => p.name)
      .join(', ');
  return [
    el('h2', {}, 'Plugins'),
    el(
      'table',
      { id: 'plugins' },
      el(
        'thead',
        {},
        el('tr', {}, ['Plugin', 'Version', 'World', 'Connector', 'Size', 'Pushed', 'Used by'].map((h) => el('th', { scope: 'col' }, h))),
      ),
      el(
        'tbody',
        {},
        plugins.map((v) =>
          el(
            'tr',
            {},
            el('td', {}, v.name),
            el('td', { class: 'num' }, String(v.version)),
            el('td', {}, v.world),
            el('td', {}, `${v.spec.name} ${v.spec.version}`),
            el('td', { class: 'num' }, v.size === null ? '—' : bytes(v.size)),
            el('td', {}, new Date(v.created_at_ms).toLocaleString()),
            el('td', {}, users(v) || '—'),
          ),
        ),
      ),
    ),
  ];
}

let tenants = null;

function tenantsView() {
  if (tenants === null) {
    tenants = [];
    api('GET', '/v1/tenants').then((list) => {
      tenants = list;
      render(true);
    });
  }
  return [
    el('h2', {}, 'Tenants'),
    el(
      'table',
      { id: 'tenants' },
      el(
        'thead',
        {},
        el('tr', {}, ['Tenant', 'Pipelines', 'CPU used', 'CPU share', 'Memory per instance', 'Directories', 'Network'].map((h) => el('th', { scope: 'col' }, h))),
      ),
      el(
        'tbody',
        {},
        tenants.map((t) =>
          el(
            'tr',
            {},
            el('td', {}, t.name),
            el('td', { class: 'num' }, `${t.pipelines ?? '?'} of ${t.quotas.max_pipelines}`),
            el('td', { class: 'num' }, `${(t.cpu_seconds ?? 0).toFixed(1)} s`),
            el('td', {}, t.quotas.cpu ? `${t.quotas.cpu} cores` : 'no cap'),
            el('td', {}, t.quotas.memory),
            el('td', {}, (t.grants.dirs ?? []).map((d) => `${d.host}${d.write ? ' (write)' : ''}`).join(', ') || '—'),
            el('td', {}, (t.grants.http?.hosts ?? []).join(', ') || '—'),
          ),
        ),
      ),
    ),
  ];
}

/** Builds the view for the route, or (`full` false, the same route) updates its live
 * parts in place. */
function render(full = false) {
  const view = $('view');
  const route = location.hash.replace(/^#\/?/, '');
  const section = route.split('/')[0] || (mode === 'admin' ? 'tenants' : 'pipelines');
  for (const id of ['pipelines', 'plugins', 'tenants']) {
    const a = $(`nav-${id}`);
    a.hidden = (id === 'tenants') !== (mode === 'admin');
    if (section === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const key = `${mode}:${route}`;
  const detailOf = mode === 'tenant' && route.startsWith('pipelines/') ? decodeURIComponent(route.slice(10)) : null;
  if (!full && view.dataset.route === key && !(detailOf && !$('live'))) {
    if (detailOf) updatePipeline(detailOf);
    else if (mode === 'tenant' && route !== 'plugins') updatePipelines();
    return;
  }
  if ($('confirm-delete')?.open) return; // leave an open dialog alone
  const focused = document.activeElement?.id;
  const chosen = new Map([...view.querySelectorAll('input[id], select[id]')].map((e) => [e.id, e.value]));
  let content;
  if (mode === 'admin') content = tenantsView();
  else if (detailOf) content = pipelineView(detailOf);
  else if (route === 'plugins') content = pluginsView();
  else content = pipelinesView();
  view.replaceChildren(...content);
  view.dataset.route = key;
  if (detailOf && detail.name === detailOf && detail.dead && $('more')) updateDetail(detailOf);
  for (const [id, value] of chosen) {
    const e = $(id);
    if (e && (!e.options || [...e.options].some((o) => o.value === value))) e.value = value;
  }
  if (mode === 'tenant' && !detailOf && route !== 'plugins') updatePipelines();
  if (focused && $(focused)) $(focused).focus();
}

function show() {
  const signedIn = mode !== null;
  $('sign-in').hidden = signedIn;
  $('nav').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
  $('view').hidden = !signedIn;
  $('who').textContent = signedIn ? (mode === 'admin' ? 'Signed in as the admin' : `Signed in as tenant ${tenantName}`) : '';
  if (signedIn) {
    if (mode === 'tenant') watch();
    render(true);
  } else {
    $('token').focus();
  }
}

addEventListener('hashchange', () => render(true));
addEventListener('DOMContentLoaded', async () => {
  $('sign-out').addEventListener('click', signOut);
  $('sign-in').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('sign-in-error').textContent = '';
    try {
      await signIn($('token').value);
      $('token').value = '';
      show();
    } catch (err) {
      sessionStorage.removeItem(KEY);
      $('sign-in-error').textContent =
        err instanceof Refused ? 'The server refused this token.' : `Cannot sign in: ${err.message}`;
    }
  });
  if (sessionStorage.getItem(KEY)) {
    try {
      await signIn(sessionStorage.getItem(KEY));
    } catch {
      sessionStorage.removeItem(KEY);
    }
  }
  show();
});
