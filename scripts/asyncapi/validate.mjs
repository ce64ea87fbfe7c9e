// Parses docs/asyncapi.yaml (or the file named as the first argument) with the official AsyncAPI parser,
// resolving its relative file $refs (the JSON Schemas in schemas/), and prints every diagnostic. Exits 1 on
// any error; warnings, infos and hints are printed and do not fail the check. The parser does not check
// message examples, so each example's payload and headers are then validated against the message's
// (resolved) schemas with Ajv, in JSON Schema 2020-12 as schemas/ declare.
import { resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const here = fileURLToPath(new URL('.', import.meta.url));
const file = resolve(process.argv[2] ?? resolve(here, '../../docs/asyncapi.yaml'));
const shown = relative(process.cwd(), file) || file;

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

const parser = new Parser();
let output;
try {
  output = await fromFile(parser, file).parse();
} catch (err) {
  console.error(`${shown}: cannot be parsed: ${err?.stack ?? err}`);
  process.exit(1);
}

let errors = 0;
for (const d of output.diagnostics) {
  const severity = names[d.severity] ?? String(d.severity);
  if (d.severity === DiagnosticSeverity.Error) errors += 1;
  const where = d.range ? `${d.range.start.line + 1}:${d.range.start.character + 1}` : '-';
  const path = d.path?.length ? ` at ${d.path.join('.')}` : '';
  console.log(`${shown}:${where} ${severity} ${d.code}: ${d.message}${path}`);
}

if (errors > 0 || !output.document) {
  console.error(`${shown}: ${errors} error(s); not a valid AsyncAPI document`);
  process.exit(1);
}
const doc = output.document;

// A resolved schema without the identifiers of the files it came from: the same file may be embedded
// twice (fetchResult and updateResult both hold the result schema), and `$schema` is Ajv's to decide.
function plain(schema) {
  if (Array.isArray(schema)) return schema.map(plain);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key]) => key !== '$id' && key !== '$schema' && !key.startsWith('x-parser-'))
      .map(([key, value]) => [key, plain(value)]),
  );
}

let examples = 0;
for (const message of doc.components().messages()) {
  const parts = [
    ['payload', message.payload()?.json()],
    ['headers', message.headers()?.json()],
  ];
  for (const example of message.examples()) {
    for (const [part, schema] of parts) {
      const value = part === 'payload' ? example.payload() : example.headers();
      if (value === undefined || schema === undefined) continue;
      const ajv = new Ajv2020({ strict: false, allErrors: true });
      addFormats(ajv);
      const validate = ajv.compile(plain(schema));
      examples += 1;
      if (!validate(value)) {
        errors += 1;
        const why = ajv.errorsText(validate.errors, { dataVar: part });
        console.log(`${shown}: error example ${message.id()}/${example.name() ?? '?'}: ${why}`);
      }
    }
  }
}
if (errors > 0) {
  console.error(`${shown}: ${errors} example(s) do not match their message's schema`);
  process.exit(1);
}
console.log(
  `${shown}: valid AsyncAPI ${doc.version()}: ${doc.channels().length} channels, ` +
    `${doc.operations().length} operations, ${doc.components().messages().length} messages, ` +
    `${examples} example part(s) checked (${output.diagnostics.length} diagnostic(s), 0 errors)`,
);
