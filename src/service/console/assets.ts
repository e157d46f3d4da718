/**
 * The console's own static files, served by the service under /console/assets/ (no CDN, works
 * offline): the style sheet, the one small script, and htmx from node_modules. Kept as strings so
 * the compiled service carries them without a copy step. No inline script or style anywhere: the
 * Content-Security-Policy allows 'self' only.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export const CONSOLE_CSS = `
:root { color-scheme: light; --fg: #1b1f23; --muted: #4a5560; --line: #c9d1d9; --accent: #0b5cad; --bad: #a4161a; --ok: #1a6b2d; --bg: #fff; --soft: #f3f5f7; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f0a30a; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--bg); padding: .5rem; }
.skip:focus { left: .5rem; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .6rem 1rem; background: #102a43; color: #fff; }
header.top a { color: #fff; }
header.top .brand { font-weight: 700; color: #fff; text-decoration: none; }
nav.main ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
nav.main a[aria-current="page"] { font-weight: 700; text-decoration: underline; text-underline-offset: 4px; }
header.top .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; }
main { padding: 1rem; max-width: 1200px; }
h1 { font-size: 1.5rem; margin: .3rem 0 1rem; }
h2 { font-size: 1.2rem; margin-top: 1.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); }
td.wrap, .mono { overflow-wrap: anywhere; }
.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .92em; }
.table-wrap { overflow-x: auto; }
.status { display: inline-block; padding: 0 .4rem; border: 1px solid currentColor; border-radius: 3px; font-size: .9em; white-space: nowrap; }
.status.pending { color: #7a4d00; } .status.issued, .status.delivered, .status.approved { color: var(--ok); } .status.rejected, .status.revoked { color: var(--bad); }
.status.card-active, .status.cert-good { color: var(--ok); } .status.card-suspended, .status.cert-on-hold, .status.cert-not-yet-valid { color: #7a4d00; } .status.card-lost, .status.card-retired, .status.cert-revoked, .status.cert-expired { color: var(--bad); }
.notice { border-left: 5px solid var(--ok); background: #eef7f0; padding: .6rem .8rem; margin-bottom: 1rem; }
.error { border-left: 5px solid var(--bad); background: #fbeeee; padding: .6rem .8rem; margin-bottom: 1rem; }
.empty { background: var(--soft); padding: 1rem; }
form.inline { display: inline; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: flex-end; margin-bottom: 1rem; }
form.filters div, form.stack div { display: flex; flex-direction: column; gap: .2rem; }
form.stack { display: flex; flex-direction: column; gap: .8rem; max-width: 32rem; }
form.stack div.check { flex-direction: row; align-items: flex-start; gap: .5rem; }
label { font-weight: 600; }
input, select, textarea, button { font: inherit; padding: .4rem .5rem; border: 1px solid #6b7785; border-radius: 4px; background: #fff; color: var(--fg); }
button, .button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; text-decoration: none; display: inline-block; padding: .4rem .8rem; border-radius: 4px; }
button.danger, .button.danger { background: var(--bad); border-color: var(--bad); }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.secret { font-size: 1.05em; padding: .5rem; background: var(--soft); border: 1px dashed var(--muted); overflow-wrap: anywhere; }
.muted { color: var(--muted); }
@media (max-width: 700px) {
  header.top .who { margin-left: 0; }
  table.cards-on-phone thead { display: none; }
  table.cards-on-phone tr { display: block; border: 1px solid var(--line); margin-bottom: .8rem; }
  table.cards-on-phone td { display: block; position: relative; padding-left: 8.5rem; border: 0; min-height: 2rem; }
  table.cards-on-phone td::before { content: attr(data-label); position: absolute; left: .5rem; width: 7.5rem; font: 600 1rem/1.45 system-ui, sans-serif; }
  dl.facts { grid-template-columns: 1fr; }
}
`;

/**
 * Progressive enhancement only, every page works without it: times in the browser's time zone
 * (the UTC time stays in the title), copy buttons, and re-running both on what htmx swaps in.
 */
export const CONSOLE_JS = `
(function () {
  'use strict';
  function localTimes(root) {
    var nodes = root.querySelectorAll('time[datetime]');
    for (var i = 0; i < nodes.length; i++) {
      var t = nodes[i];
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) continue;
      t.textContent = d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
    }
  }
  function copyButtons(root) {
    var buttons = root.querySelectorAll('button[data-copy]');
    for (var i = 0; i < buttons.length; i++) {
      var b = buttons[i];
      if (b.getAttribute('data-ready')) continue;
      b.setAttribute('data-ready', '1');
      b.hidden = false;
      b.addEventListener('click', function (e) {
        var button = e.currentTarget;
        var source = document.getElementById(button.getAttribute('data-copy'));
        var status = document.getElementById(button.getAttribute('data-status'));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          if (status) status.textContent = 'Copied to the clipboard.';
        }, function () {
          if (status) status.textContent = 'Could not copy: select the token and copy it by hand.';
        });
      });
    }
  }
  function enhance(root) { localTimes(root); copyButtons(root); }
  document.addEventListener('DOMContentLoaded', function () { enhance(document); });
  document.addEventListener('htmx:load', function (e) { enhance(e.target); });
})();
`;

/** A plain card shape, so the browser does not ask for /favicon.ico (a 404 in every console log). */
export const FAVICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="6" width="28" height="20" rx="3" fill="#102a43"/><rect x="6" y="12" width="8" height="7" rx="1" fill="#f0a30a"/></svg>';

const require = createRequire(import.meta.url);
let htmx: string | undefined;

/** htmx 2 from the installed package, read once. */
export function htmxSource(): string {
  htmx ??= readFileSync(require.resolve('htmx.org/dist/htmx.min.js'), 'utf8');
  return htmx;
}
