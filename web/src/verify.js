// The verifier page's behaviour: /verify, each receipt page, and a dataset's row proof.
//
// The page works without this script (the form is posted and the service answers). With it,
// the browser verifies by itself against the node the auditor names, and shows the service's
// report beside its own when asked to.

import { processProof } from "@openzeppelin/merkle-tree/dist/core.js";
import { standardLeafHash } from "@openzeppelin/merkle-tree/dist/hashes.js";
import { LedgerReader } from "./verify/chain.js";
import { ReceiptFormatError, readEvidence, verifyReceipt } from "./verify/checks.js";
import { canonicalJson, parseJson, prettyJson } from "./verify/json.js";
import { servicePending, withPending } from "./verify/pending.js";
import { jsonHash } from "./verify/receipt.js";

const MARKS = {
  true: ["mark--ok", "✓ passed"],
  false: ["mark--fail", "✗ failed"],
  null: ["mark--none", "· n/a"],
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** A report as a table, the same shape as the server's (templates/_macros.html report_table). */
export function reportTable(report, caption) {
  const verdict = el("span", { class: `verdict verdict--${report.verdict}` }, report.verdict);
  const body = el("tbody");
  for (const check of report.checks) {
    const [cls, text] = MARKS[String(check.ok)];
    body.append(
      el(
        "tr",
        { "data-check": check.name, "data-ok": String(check.ok) },
        el("th", { scope: "row" }, el("code", {}, check.name)),
        el("td", {}, el("span", { class: `mark ${cls}` }, text)),
        el("td", { class: "detail" }, check.detail),
      ),
    );
  }
  const head = el("thead", {}, el("tr", {}, ...["Check", "Result", "Detail"].map((h) => el("th", { scope: "col" }, h))));
  return el("table", { class: "table checks" }, el("caption", {}, `${caption}: `, verdict), head, body);
}

function defaultRpc() {
  return new URL("/rpc", window.location.href).href;
}

function showReport(section, report, caption, where) {
  section.hidden = false;
  section.dataset.verdict = report.verdict;
  const badge = section.querySelector("[data-verdict-badge]");
  if (badge) {
    badge.hidden = false;
    badge.className = `verdict verdict--${report.verdict}`;
    badge.textContent = report.verdict;
  }
  section.querySelector("[data-report]").replaceChildren(reportTable(report, caption));
  const line = section.querySelector("[data-where]");
  if (line && where) line.textContent = where;
}

function agreement(browser, service) {
  // A check one side could not make (null: the browser has no artifact store) is no disagreement.
  const mine = new Map(browser.checks.map((c) => [c.name, c.ok]));
  const differ = service.checks
    .filter((c) => mine.has(c.name) && mine.get(c.name) !== null && c.ok !== null && mine.get(c.name) !== c.ok)
    .map((c) => c.name);
  const onlyService = service.checks.filter((c) => c.ok !== null && (mine.get(c.name) ?? null) === null).map((c) => c.name);
  const extra = onlyService.length ? ` The service also checked ${onlyService.join(", ")}, which your browser cannot.` : "";
  if (browser.verdict === service.verdict && differ.length === 0) return `Your browser and the service agree: ${browser.verdict}.${extra}`;
  return `Your browser says ${browser.verdict}, the service ${service.verdict}${differ.length ? `; they differ on ${differ.join(", ")}` : ""}.${extra}`;
}

async function serviceReport(evidence, receiptText, inputText) {
  // Sent as Python-compatible JSON text, so a float such as 5000.0 reaches the service as one.
  const receiptDoc = parseJson(receiptText);
  const doc = receiptDoc.receipt === undefined ? receiptDoc : receiptDoc.receipt;
  const input = inputText.trim() ? parseJson(inputText) : receiptDoc.input ?? null;
  const body = `{"receipt":${canonicalJson(doc)}${input !== null && input !== undefined ? `,"input":${canonicalJson(input)}` : ""}}`;
  const response = await fetch("/v1/verify/receipt", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body,
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.detail ?? `the service answered ${response.status}`);
  return answer;
}

/** The verdicts, by the page's title, where the receipt page has a place for them. */
function summarise(who, verdict) {
  const slot = document.querySelector(`[data-summary-${who}]`);
  if (!slot) return;
  slot.closest("[data-verdict-summary]").hidden = false;
  slot.className = `verdict verdict--${verdict}`;
  slot.textContent = verdict;
}

function setupVerifier(form) {
  const textarea = form.querySelector("#document");
  const fileInput = form.querySelector("#document-file");
  const error = document.querySelector("[data-verifier-error]");
  const browserSection = document.getElementById("browser-report");
  const serviceSection = document.getElementById("service-report");
  const submit = form.querySelector("button[type=submit]");

  const readFile = async (file) => {
    textarea.value = await file.text();
    textarea.focus();
  };
  fileInput?.addEventListener("change", () => fileInput.files[0] && readFile(fileInput.files[0]));
  textarea.addEventListener("dragover", (event) => {
    event.preventDefault();
    textarea.classList.add("is-dropping");
  });
  textarea.addEventListener("dragleave", () => textarea.classList.remove("is-dropping"));
  textarea.addEventListener("drop", (event) => {
    event.preventDefault();
    textarea.classList.remove("is-dropping");
    const file = event.dataTransfer?.files?.[0];
    if (file) readFile(file);
  });

  const run = async () => {
    error.hidden = true;
    form.setAttribute("aria-busy", "true");
    submit.disabled = true;
    browserSection.hidden = false;
    delete browserSection.dataset.verdict;
    browserSection.querySelector("[data-report]").replaceChildren(el("p", { class: "muted" }, "Verifying against the chain…"));
    const rpcUrl = form.rpc_url.value.trim() || defaultRpc();
    const askService = form.ask_service.checked;
    try {
      const evidence = readEvidence(textarea.value, { contract: form.contract.value, inputText: form.input.value });
      const [onChain, service] = await Promise.all([
        verifyReceipt(evidence, rpcUrl),
        askService ? serviceReport(evidence, textarea.value, form.input.value).catch((e) => e) : null,
      ]);
      // Asked, the service may say a record the node lacks is on its way: pending, in its words.
      const subjects = { model_registered: evidence.receipt.modelHash };
      if (evidence.anchoring !== null) subjects.batch_anchored = evidence.anchoring.batchId;
      const browser = askService ? await withPending(onChain, subjects, servicePending) : onChain;
      showReport(browserSection, browser, "Your browser's report", `Read from ${rpcUrl} in ${browser.calls} JSON-RPC calls; ledger ${evidence.contract}.`);
      summarise("browser", browser.verdict);
      if (service instanceof Error) {
        serviceSection.hidden = false;
        serviceSection.querySelector("[data-report]").replaceChildren(el("p", { class: "notice notice--error" }, `The service could not verify it: ${service.message}`));
      } else if (service) {
        showReport(serviceSection, service, "The service's report");
        summarise("service", service.verdict);
        browserSection.querySelector("[data-where]").textContent += ` ${agreement(browser, service)}`;
      } else {
        serviceSection.hidden = true;
      }
    } catch (failure) {
      browserSection.hidden = true;
      error.hidden = false;
      error.textContent = failure instanceof ReceiptFormatError ? `Not a receipt: ${failure.message}` : failure.message;
      error.dataset.kind = failure instanceof ReceiptFormatError ? "format" : "chain";
    } finally {
      form.removeAttribute("aria-busy");
      submit.disabled = false;
      form.dataset.state = "done";
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });

  const bundleUrl = form.dataset.bundleUrl;
  if (form.hasAttribute("data-auto") && bundleUrl) {
    fetch(bundleUrl, { headers: { Accept: "application/json" } })
      .then(async (response) => {
        if (!response.ok) return;
        const text = await response.text();
        try {
          textarea.value = prettyJson(parseJson(text));
        } catch {
          textarea.value = text;
        }
      })
      .finally(run);
  }
}

async function setupRowProof(script) {
  const data = parseJson(script.textContent);
  const mark = document.querySelector("[data-browser-mark]");
  const detail = document.querySelector("[data-browser-detail]");
  const { proof, dataset, chain } = data;
  try {
    const digest = jsonHash(proof.row);
    const leaf = standardLeafHash(proof.leaf_encoding, [proof.index.value, digest]);
    const root = processProof(leaf, proof.proof).toLowerCase();
    const reader = new LedgerReader(defaultRpc(), chain.contract);
    await reader.snapshot();
    const { event } = await reader.event("DatasetRegistered", dataset);
    if (event === null) throw new Error(`the chain has no dataset ${dataset}`);
    const onChain = event.args.rowsRoot.toLowerCase();
    const ok = digest === proof.row_digest && root === onChain;
    mark.replaceChildren(el("span", { class: `mark ${ok ? "mark--ok" : "mark--fail"}` }, ok ? "✓ passed" : "✗ failed"));
    detail.textContent = ok
      ? `the row hashes to its digest, and its proof folds to ${onChain.slice(0, 10)}…, the rows root the chain recorded in block ${event.blockNumber}`
      : `the row hashes to ${digest} and folds to ${root}; the chain's rows root is ${onChain}`;
    mark.dataset.ok = String(ok);
  } catch (failure) {
    mark.replaceChildren(el("span", { class: "mark mark--fail" }, "✗ could not check"));
    detail.textContent = failure.message;
    mark.dataset.ok = "error";
  }
}

const form = document.querySelector("[data-verifier]");
if (form) setupVerifier(form);
const rowProof = document.getElementById("row-proof-data");
if (rowProof) setupRowProof(rowProof);
