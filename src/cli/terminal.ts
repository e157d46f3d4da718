/**
 * Text that came from a card, a request or the service is shown to an operator in a terminal
 * (docs/sources.md#terminal-output).
 * A terminal acts on what it is sent: ESC and the C1 controls start escape sequences (set the
 * window title, clear the screen, move the cursor: ECMA-48 §5), a CR or LF starts a line that
 * looks like the program's own, NUL hides what follows in some viewers, and the Unicode
 * bidirectional controls reorder what is shown (Unicode TR #9; CVE-2021-42574 "Trojan Source").
 * Such characters are shown as `\uXXXX` instead: the operator sees that they were there, and the
 * escape is also valid inside a JSON string, so the same rule serves `--json`.
 */

// C0 controls, DEL and C1; the bidi embeddings, overrides and isolates, the implicit marks
// (LRM, RLM, ALM), the line and paragraph separators, and U+FEFF (an invisible BOM/ZWNBSP).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;
// The same, but the layout the program itself prints (LF and TAB) passes.
// eslint-disable-next-line no-control-regex -- as above
const UNSAFE_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

function escapeChar(ch: string): string {
  return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** One value for the terminal: every control, bidi or separator character escaped, LF and TAB included. */
export function forTerminal(value: unknown): string {
  return String(value).replace(UNSAFE, escapeChar);
}

/**
 * A tagged template for output lines: the literal parts are the program's own, every `${value}`
 * goes through forTerminal. Every text printer of the CLI builds its lines with it, e.g.
 * ``line`${r.id}  ${r.user}` ``.
 */
export function line(strings: TemplateStringsArray, ...values: unknown[]): string {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += forTerminal(v) + strings[i + 1]!;
  });
  return out;
}

/**
 * The last guard before a byte reaches stdout or stderr: whatever a printer missed loses its
 * controls, while the program's own line breaks and tabs stay. In JSON output the characters it
 * escapes can only stand inside strings, where `\uXXXX` is the JSON escape of the same character.
 */
export function guardOutput(text: string): string {
  return text.replace(UNSAFE_BUT_LAYOUT, escapeChar);
}
