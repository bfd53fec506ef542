// Parses and binds every KQL query of the workbook and the alert rules with Microsoft's Kusto language service
// (npm @kusto/language-service-next, offline), against the custom tables the ARM template declares.
//
//   NODE_PATH=<node_modules with the package> node infra/kql_check.js --tables infra/monitoring.json \
//       infra/workbook.json infra/alerts.json
//
// Every string property named "query" in the given JSON files is checked (workbook items and parameters, the
// scheduled query rules' criteria). Workbook parameters such as {Vault} become a string literal first. Prints
// one JSON report on stdout: {"tables": {name: [columns]}, "queries": [{"file", "where", "errors"}]}; exits 1
// when a query has an error (syntax, unknown table or column, wrong type), 2 when it cannot run.
"use strict";

const fs = require("fs");
const path = require("path");

function loadKusto() {
  const folder = path.dirname(require.resolve("@kusto/language-service-next/package.json"));
  require(path.join(folder, "bridge.js"));
  require(path.join(folder, "Kusto.Language.Bridge.js"));
  return globalThis.Kusto.Language;
}

function usage(message) {
  process.stderr.write(`kql_check: ${message}\nusage: node kql_check.js --tables TEMPLATE.json... FILE.json...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const templates = [];
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--tables") {
      if (i + 1 >= argv.length) usage("--tables needs a template");
      templates.push(argv[++i]);
    } else {
      files.push(argv[i]);
    }
  }
  if (!templates.length || !files.length) usage("give at least one --tables template and one file to check");
  return { templates, files };
}

// Calls visit(node, where) for every object and array in a JSON document; where names the path, with an
// object's "name" (a workbook item's, a resource's) in brackets so a report says which item failed.
function walk(node, where, visit) {
  if (Array.isArray(node)) {
    node.forEach((child, index) => walk(child, `${where}/${index}`, visit));
  } else if (node && typeof node === "object") {
    const here = typeof node.name === "string" ? `${where}[${node.name}]` : where;
    visit(node, here);
    for (const [key, child] of Object.entries(node)) walk(child, `${here}/${key}`, visit);
  }
}

function declaredTables(K, templates) {
  const S = K.Symbols;
  const types = {
    string: S.ScalarTypes.String, datetime: S.ScalarTypes.DateTime, int: S.ScalarTypes.Int,
    long: S.ScalarTypes.Long, real: S.ScalarTypes.Real, boolean: S.ScalarTypes.Bool,
    dynamic: S.ScalarTypes.Dynamic, guid: S.ScalarTypes.Guid, timespan: S.ScalarTypes.TimeSpan,
  };
  const found = {};
  for (const file of templates) {
    walk(JSON.parse(fs.readFileSync(file, "utf8")), "", (node) => {
      const schema = node.properties && node.properties.schema;
      if (typeof node.type !== "string" || !/\/workspaces\/tables$/i.test(node.type) || !schema) return;
      const unknown = schema.columns.filter((c) => !(c.type.toLowerCase() in types));
      if (unknown.length) usage(`${file}: table ${schema.name}: unknown column types ${unknown.map((c) => c.type)}`);
      found[schema.name] = schema.columns.map((c) => [c.name, types[c.type.toLowerCase()]]);
    });
  }
  if (!Object.keys(found).length) usage(`no Microsoft.OperationalInsights/workspaces/tables in ${templates}`);
  return found;
}

function main() {
  const { templates, files } = parseArgs(process.argv.slice(2));
  const K = loadKusto();
  const S = K.Symbols;
  const tables = declaredTables(K, templates);
  const symbols = Object.entries(tables).map(
    ([name, columns]) => new S.TableSymbol.$ctor4(name, columns.map(([column, type]) => new S.ColumnSymbol(column, type))),
  );
  const globals = K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor("workspace", symbols));
  const queries = [];
  for (const file of files) {
    walk(JSON.parse(fs.readFileSync(file, "utf8")), "", (node, where) => {
      if (typeof node.query !== "string") return;
      // An ARM expression ("[replace(variables('x').query, ...)]") is not KQL: it fills a template's placeholders
      // into a query kept literally elsewhere in the file (a variable's "query"), which this walk checks.
      if (/^\[[^[][\s\S]*\]$/.test(node.query)) return;
      const text = node.query.replace(/\{[A-Za-z_]\w*(:[A-Za-z]+)?\}/g, "'*'");
      const diagnostics = K.KustoCode.ParseAndAnalyze(text, globals).GetDiagnostics();
      const errors = [];
      for (let i = 0; i < diagnostics.Count; i++) {
        const d = diagnostics.getItem(i);
        if (String(d.Severity) === "Error") errors.push(`${d.Message} (at ${JSON.stringify(text.substr(d.Start, 30))})`);
      }
      queries.push({ file, where: `${where}/query`, errors });
    });
  }
  const report = {
    tables: Object.fromEntries(Object.entries(tables).map(([name, columns]) => [name, columns.map(([c]) => c)])),
    queries,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  for (const q of queries.filter((q) => q.errors.length)) process.stderr.write(`FAIL ${q.file} ${q.where}: ${q.errors.join(" | ")}\n`);
  process.exit(queries.some((q) => q.errors.length) ? 1 : 0);
}

main();
