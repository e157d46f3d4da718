/**
 * HTML built in TypeScript with one escaping rule: every value interpolated into an `html`
 * template is escaped, unless it is itself the result of an `html` template. There is no other
 * way to put text into a page, so an attacker-controlled string (a CSR subject, a reject reason,
 * a user name) always arrives as text. The escaping follows the OWASP XSS Prevention Cheat Sheet
 * rule #1/#2 (& < > " ' for element content and quoted attribute values).
 */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Markup that is already safe: made only by `html` (or `join` of such). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return (v as readonly Value[]).map(render).join('');
  return escapeHtml(String(v));
}

/** The tagged template: `html\`<td>${subject}</td>\`` escapes `subject`; arrays are joined; null, undefined and false render nothing. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}
