// Build the console's static files into api/console/static/ (committed; the app serves them).
//
//   npm ci --prefix web && node web/build.mjs            # rebuild the committed bundles
//   node web/build.mjs --check                            # exit 1 if they differ from a rebuild
//   node web/build.mjs --outdir DIR                       # build elsewhere (the tests compare)
//   node web/build.mjs --check --against DIR               # compare with DIR, not static/
//
// The output is deterministic: pinned esbuild, pinned packages (package-lock.json), no source
// maps, no timestamps. The contract ABI comes from the committed artifact, so a contract change
// that the verifier must follow shows up as a stale bundle.
//
// Swagger UI for the API's /docs page is copied from the pinned swagger-ui-dist package (not
// rebuilt), without its source-map comments (no maps are shipped), with its licence files, so
// the page works with no network and the same check covers it.

import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(WEB, "..");
const STATIC = join(REPO, "api", "console", "static");
const ARTIFACT = join(REPO, "contracts", "build", "ProvenanceLedger.json");
const ENTRIES = { "verify.js": "src/verify.js", "lineage.js": "src/lineage.js", "console.css": "src/console.css" };
const SWAGGER_UI = join(WEB, "node_modules", "swagger-ui-dist");
const COPIES = {
  "swagger-ui-bundle.js": ["swagger-ui-bundle.js"],
  "swagger-ui.css": ["swagger-ui.css"],
  "swagger-ui-bundle.js.LICENSE.txt": ["swagger-ui-bundle.js.LICENSE.txt"],
  "swagger-ui.LICENSE.txt": ["NOTICE", "LICENSE"],
};

function copied(sources) {
  const text = sources.map((name) => readFileSync(join(SWAGGER_UI, name), "utf8")).join("\n");
  const unmapped = text.replace(/\n*\/[*/]# sourceMappingURL=[^\n]*/g, "");
  return Buffer.from(unmapped, "utf8");
}

const ledgerAbi = {
  name: "ledger-abi",
  setup(b) {
    b.onResolve({ filter: /^virtual:ledger-abi$/ }, (args) => ({ path: args.path, namespace: "ledger-abi" }));
    b.onLoad({ filter: /.*/, namespace: "ledger-abi" }, () => {
      const { abi } = JSON.parse(readFileSync(ARTIFACT, "utf8"));
      return { contents: `export default ${JSON.stringify(abi)};`, loader: "js" };
    });
  },
};

async function bundle(name, entry) {
  const result = await build({
    entryPoints: [join(WEB, entry)],
    bundle: true,
    minify: true,
    write: false,
    format: name.endsWith(".js") ? "esm" : undefined,
    target: ["chrome111", "firefox115", "safari16.4"],
    legalComments: "eof",
    charset: "utf8",
    absWorkingDir: WEB,
    plugins: [ledgerAbi],
    logLevel: "warning",
  });
  return Buffer.from(result.outputFiles[0].contents);
}

async function main(argv) {
  const check = argv.includes("--check");
  const at = argv.indexOf("--outdir");
  const outdir = at >= 0 ? resolve(argv[at + 1]) : STATIC;
  const against = argv.indexOf("--against");
  const committedDir = against >= 0 ? resolve(argv[against + 1]) : STATIC;
  const built = {};
  for (const [name, entry] of Object.entries(ENTRIES)) built[name] = await bundle(name, entry);
  for (const [name, sources] of Object.entries(COPIES)) built[name] = copied(sources);
  if (check) {
    const committed = readdirSync(committedDir).sort();
    const stale = Object.keys(built).filter((name) => {
      try {
        return !readFileSync(join(committedDir, name)).equals(built[name]);
      } catch {
        return true;
      }
    });
    const extra = committed.filter((name) => !(name in built));
    if (stale.length || extra.length) {
      console.error(`stale console assets: ${[...stale, ...extra].join(", ")}; run \`node web/build.mjs\``);
      return 1;
    }
    console.log(`console assets are up to date (${Object.keys(built).join(", ")})`);
    return 0;
  }
  mkdirSync(outdir, { recursive: true });
  for (const [name, contents] of Object.entries(built)) {
    writeFileSync(join(outdir, name), contents);
    console.log(`${join(outdir, name)}  ${contents.length.toLocaleString("en")} bytes`);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
