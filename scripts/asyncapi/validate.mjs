// Parse an AsyncAPI document with the official parser; print every diagnostic of severity
// error (and warning), exit 1 when there is any error. Usage: node validate.mjs <document>
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const path = process.argv[2];
if (!path) {
  console.error('usage: node validate.mjs <asyncapi document>');
  process.exit(2);
}
const { document, diagnostics } = await new Parser().parse(readFileSync(path, 'utf8'), { source: path });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
for (const d of [...errors, ...warnings]) {
  const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
  console.log(`${level} ${d.code} at ${d.path.join('.') || '/'}: ${d.message}`);
}
const parsed = document ? `AsyncAPI ${document.version()}, ${document.messages().length} messages` : 'not parsed';
console.log(`${path}: ${parsed}; ${errors.length} errors, ${warnings.length} warnings`);
process.exit(errors.length === 0 && document ? 0 : 1);
