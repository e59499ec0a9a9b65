// verify_receipt of ledger/verification/receipt_checks.py, in the browser: the same named checks, in the same order,
// with the same details, decided the same way, against the node the auditor names.
//
// Check names are the CLI's (`provenance verify FILE --rpc-url URL`); a test drives both on the
// same documents and compares them, so a check added to one and not the other is caught.
// Like the CLI, this verifier has no artifact store: `artifacts` is reported as not applicable.

import { processProof } from "@openzeppelin/merkle-tree/dist/core.js";
import { getAddress } from "viem";
import { LedgerReader } from "./chain.js";
import { parseJson } from "./json.js";
import {
  ReceiptFormatError,
  inputHash,
  jsonHash,
  readAnchoring,
  readBlockClaims,
  readReceipt,
  receiptDomain,
  receiptLeafHash,
  recoverSigner,
} from "./receipt.js";

/**
 * What a pasted document gives the verifier (api/cli/verify.py _read_evidence): the receipt, its
 * anchoring, the ledger contract and the input row. Raises ReceiptFormatError like the CLI.
 */
export function readEvidence(text, { contract = "", inputText = "" } = {}) {
  let document;
  try {
    document = parseJson(text);
  } catch (error) {
    throw new ReceiptFormatError(`not a readable JSON document: ${error.message}`);
  }
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const receiptDoc = isObject(document) ? (document.receipt === undefined ? document : document.receipt) : null;
  if (!isObject(receiptDoc)) throw new ReceiptFormatError("not a receipt: it holds no JSON object");
  let input = isObject(document) && document.input !== undefined ? document.input : null;
  if (inputText.trim()) {
    try {
      input = parseJson(inputText);
    } catch (error) {
      throw new ReceiptFormatError(`the input row is not JSON: ${error.message}`);
    }
  }
  const ledger = isObject(document) ? document.ledger : null;
  const address = contract.trim() || (isObject(ledger) && typeof ledger.contract === "string" ? ledger.contract : "");
  if (!address) throw new ReceiptFormatError("a ledger contract address is required for a bare receipt");
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new ReceiptFormatError(`the contract ${address} is not an address`);
  const isBundle = isObject(document) && document.receipt !== undefined;
  return {
    receipt: readReceipt(receiptDoc),
    anchoring: readAnchoring(receiptDoc),
    contract: address,
    input,
    isBundle,
    // the blocks a bundle's records claim, checked as the CLI checks them (block_hints)
    claims: isBundle ? readBlockClaims(document.records) : new Map(),
    serviceReport: isObject(document) && isObject(document.verification) ? document.verification : null,
  };
}

const CLOCK_TOLERANCE = 60; // ledger.verification.DEFAULT_CLOCK_TOLERANCE, as the CLI uses it

async function revocationCheck(chain, name, recordHash, what) {
  const state = await chain.record(recordHash);
  if (state?.revoked) {
    const { event } = await chain.event("RecordRevoked", recordHash);
    const reason = event ? ` (${event.args.reason}, block ${event.blockNumber})` : "";
    return { name, ok: false, detail: `${what} ${recordHash} is revoked${reason}` };
  }
  return { name, ok: true, detail: `${what} ${recordHash} is not revoked` };
}

/** ledger.ancestry.walk_ancestry over the chain: depth first, the last start first. */
async function walkAncestry(starts, lookup) {
  const visited = [];
  const revoked = [];
  const unknown = [];
  const seen = new Set();
  const frontier = [...starts];
  while (frontier.length) {
    const current = frontier.pop();
    if (seen.has(current)) continue;
    seen.add(current);
    visited.push(current);
    const facts = await lookup(current);
    if (facts === null) {
      unknown.push(current);
      continue;
    }
    if (facts.revoked) revoked.push(current);
    frontier.push(...facts.parents);
  }
  return { visited, revoked, unknown };
}

async function lineageCheck(chain, datasets, claims) {
  const lookup = async (hash) => {
    const { event } = await chain.event("DatasetRegistered", hash, claims.get(`DatasetRegistered:${hash}`)?.block ?? null);
    if (event === null) return null;
    const parents = event.args.parents.map((p) => p.toLowerCase());
    await chain.prefetch(parents);
    const state = await chain.record(hash);
    return { revoked: Boolean(state?.revoked), parents };
  };
  await chain.prefetch(datasets);
  const ancestry = await walkAncestry(datasets, lookup);
  const problems = ancestry.unknown.map((d) => `dataset ${d} is not registered`);
  for (const current of ancestry.revoked) {
    const { event } = await chain.event("RecordRevoked", current);
    problems.push(`dataset ${current} is revoked${event ? `: ${event.args.reason}` : ""}`);
  }
  if (problems.length) return { name: "training_data", ok: false, detail: problems.sort().join("; ") };
  return { name: "training_data", ok: true, detail: `${ancestry.visited.length} dataset(s) in the lineage, none revoked` };
}

async function orderCheck(chain, model, datasets) {
  const later = [];
  for (const dataset of datasets) {
    const state = await chain.record(dataset);
    if (state !== null && state.registeredAt > model.registeredAt) later.push(`dataset ${dataset} at ${state.registeredAt}`);
  }
  if (later.length) {
    return {
      name: "datasets_before_model",
      ok: false,
      detail: `the model was registered at ${model.registeredAt}, before its training data: ${later.join(", ")}`,
    };
  }
  return { name: "datasets_before_model", ok: true, detail: `${datasets.length} training dataset(s) registered before the model` };
}

/** model_registered, model_not_revoked, datasets_before_model, training_data (ledger.verification.lineage_checks.model_facts). */
async function modelFacts(chain, modelHash, claims) {
  const { event } = await chain.event("ModelRegistered", modelHash, claims.get(`ModelRegistered:${modelHash}`)?.block ?? null);
  const record = await chain.record(modelHash);
  if (event === null || record === null) {
    return { checks: [{ name: "model_registered", ok: false, detail: `no model ${modelHash} on chain` }], event: null, record: null };
  }
  const datasets = event.args.datasets.map((d) => d.toLowerCase());
  const checks = [
    { name: "model_registered", ok: true, detail: `registered in block ${event.blockNumber} by ${getAddress(event.args.registrant)} (tx ${event.txHash})` },
    await revocationCheck(chain, "model_not_revoked", modelHash, "model"),
    await orderCheck(chain, record, datasets),
    await lineageCheck(chain, datasets, claims),
  ];
  return { checks, event, record };
}

/** The signer held REGISTRAR_ROLE where the batch was anchored, or now if it is not anchored. */
async function signerCheck(chain, signer, anchored) {
  const name = "signer_authorized";
  const holdsNow = await chain.holdsRole(signer);
  if (anchored === null) {
    if (holdsNow) return { name, ok: true, detail: `${signer} holds REGISTRAR_ROLE` };
    const history = await chain.roleHistory(signer);
    return {
      name,
      ok: false,
      detail: history.length ? `${signer} lost REGISTRAR_ROLE in block ${history[history.length - 1][0]}` : `${signer} never held REGISTRAR_ROLE`,
    };
  }
  const history = await chain.roleHistory(signer);
  let held = false;
  for (const [block, logIndex, granted] of history) {
    if (block > anchored.blockNumber || (block === anchored.blockNumber && logIndex > anchored.logIndex)) break;
    held = granted;
  }
  if (!held) {
    if (!history.length) return { name, ok: false, detail: `${signer} never held REGISTRAR_ROLE` };
    const changes = history.map(([b, , g]) => `${g ? "granted" : "revoked"} in block ${b}`).join(", ");
    return {
      name,
      ok: false,
      detail: `${signer} did not hold REGISTRAR_ROLE when this receipt was anchored (block ${anchored.blockNumber}; role changes: ${changes})`,
    };
  }
  if (holdsNow) return { name, ok: true, detail: `${signer} holds REGISTRAR_ROLE` };
  const lost = history.length ? ` in block ${history[history.length - 1][0]}` : "";
  return { name, ok: true, detail: `${signer} lost REGISTRAR_ROLE${lost}, after this receipt was anchored in block ${anchored.blockNumber}` };
}

function timeChecks(receipt, model, batch, anchoring) {
  const issued = Number(receipt.issuedAt);
  const tolerance = CLOCK_TOLERANCE;
  let after;
  if (model.record === null) {
    after = { name: "issued_after_model", ok: null, detail: "no registered model to compare with" };
  } else if (issued + tolerance >= model.record.registeredAt) {
    after = { name: "issued_after_model", ok: true, detail: `issued at ${issued}, ${issued - model.record.registeredAt} s after its model was registered` };
  } else {
    after = {
      name: "issued_after_model",
      ok: false,
      detail: `issued at ${issued}, ${model.record.registeredAt - issued} s before its model was registered at ${model.record.registeredAt} (tolerance ${tolerance} s): back-dated`,
    };
  }
  let before;
  if (anchoring === null) {
    before = { name: "issued_before_anchoring", ok: null, detail: "not anchored yet" };
  } else if (batch.event === null || batch.record === null) {
    before = { name: "issued_before_anchoring", ok: null, detail: "no anchored batch to compare with" };
  } else if (issued <= batch.record.registeredAt + tolerance) {
    before = { name: "issued_before_anchoring", ok: true, detail: `issued ${batch.record.registeredAt - issued} s before its batch was anchored` };
  } else {
    before = {
      name: "issued_before_anchoring",
      ok: false,
      detail: `issued at ${issued}, ${issued - batch.record.registeredAt} s after its batch was anchored at ${batch.record.registeredAt} (tolerance ${tolerance} s)`,
    };
  }
  return [after, before];
}

/** block_hints: every block the evidence names holds the event it claims, in the claimed tx. */
async function claimsCheck(chain, claims) {
  if (claims.size === 0) return { name: "block_hints", ok: null, detail: "the evidence names no blocks" };
  const wrong = [];
  for (const claim of claims.values()) {
    const { event } = await chain.event(claim.event, claim.key, claim.block);
    if (event === null) {
      wrong.push(`${claim.event} of ${claim.key} is claimed in block ${claim.block}, but no such event is on chain`);
    } else if (event.blockNumber !== claim.block) {
      wrong.push(`${claim.event} of ${claim.key} is in block ${event.blockNumber}, not in block ${claim.block} as the evidence says`);
    } else if (claim.txHash !== null && claim.txHash !== event.txHash) {
      wrong.push(`${claim.event} of ${claim.key} is in tx ${event.txHash}, not in tx ${claim.txHash} as the evidence says`);
    }
  }
  if (wrong.length) return { name: "block_hints", ok: false, detail: wrong.join("; ") };
  return { name: "block_hints", ok: true, detail: `${claims.size} claimed block(s) hold their events` };
}

/**
 * Verify evidence (from readEvidence) against the node at rpcUrl: named checks and one verdict,
 * shaped as ledger.verification.Report.to_json(), in the same order. Throws ChainUnavailable
 * when the node cannot be read and ContractNotFound when the address holds no ledger.
 */
export async function verifyReceipt(evidence, rpcUrl) {
  const { receipt, anchoring, input } = evidence;
  const chain = new LedgerReader(rpcUrl, evidence.contract);
  const checks = [];
  const add = (name, ok, detail) => checks.push({ name, ok, detail });
  const domain = receiptDomain(await chain.chainId(), evidence.contract);
  await chain.snapshot();
  // The blocks the evidence claims: a bundle's records', then an anchored receipt's own (its
  // batch's block and tx), as BlockClaims.from_records(...).with_anchoring(...) in the CLI.
  const claims = new Map(evidence.claims ?? []);
  if (anchoring !== null && anchoring.blockNumber !== null) {
    claims.set(`PredictionsAnchored:${anchoring.batchId}`, {
      event: "PredictionsAnchored",
      key: anchoring.batchId,
      block: anchoring.blockNumber,
      txHash: anchoring.txHash,
    });
  }
  await chain.prefetch([receipt.modelHash, ...(anchoring ? [anchoring.batchId] : [])]);

  // 1. The output is the one that was signed.
  const actual = jsonHash(receipt.output);
  add(
    "output_hash",
    actual === receipt.outputHash,
    actual === receipt.outputHash ? "output matches output_hash" : `output hashes to ${actual}, the receipt says ${receipt.outputHash}`,
  );
  // 2. The service's key signed exactly these fields.
  let signer = null;
  try {
    signer = await recoverSigner(receipt, domain);
    if (signer !== receipt.service) {
      // signed under an older generation's domain? Only one the named contract reaches.
      const chainId = await chain.chainId();
      for (const older of (await chain.generations()).slice(1)) {
        const found = await recoverSigner(receipt, receiptDomain(chainId, older));
        if (found === receipt.service) {
          signer = found;
          break;
        }
      }
    }
    add(
      "signature",
      signer === receipt.service,
      signer === receipt.service ? `signed by ${signer}` : `the receipt names ${receipt.service} but ${signer} signed these fields`,
    );
  } catch (error) {
    add("signature", false, error.message);
  }
  // 3. The input, when the verifier has it.
  if (input !== null) {
    try {
      const ok = inputHash(input) === receipt.inputHash;
      add("input_hash", ok, ok ? "input matches" : "input does not hash to input_hash");
    } catch (error) {
      add("input_hash", false, `the input cannot be hashed: ${error.message}`);
    }
  }
  // 4. Inclusion in a batch (the proof folded here, then asked of the contract), and the
  //    batch on chain for this model.
  let batch = null;
  if (anchoring === null) {
    add("merkle_proof", null, "not anchored yet");
    add("batch_anchored", null, "not anchored yet");
  } else {
    const leaf = receiptLeafHash(receipt);
    const root = processProof(leaf, anchoring.proof).toLowerCase();
    const proofOk = leaf === anchoring.leaf && root === anchoring.batchId;
    add(
      "merkle_proof",
      proofOk,
      proofOk ? `leaf ${leaf} is in batch ${anchoring.batchId}` : `leaf ${leaf} with this proof gives root ${root}, not ${anchoring.batchId}`,
    );
    const claimed = claims.get(`PredictionsAnchored:${anchoring.batchId}`)?.block ?? null;
    const { event } = await chain.event("PredictionsAnchored", anchoring.batchId, claimed);
    batch = { event, record: await chain.record(anchoring.batchId) };
    if (event === null) {
      add("batch_anchored", false, `no batch ${anchoring.batchId} on chain`);
    } else if (event.args.modelHash.toLowerCase() !== receipt.modelHash) {
      add("batch_anchored", false, `batch ${anchoring.batchId} was anchored for model ${event.args.modelHash.toLowerCase()}, not ${receipt.modelHash}`);
    } else {
      const accepted = proofOk && (await chain.verifyPrediction(anchoring.batchId, leaf, anchoring.proof));
      add(
        "batch_anchored",
        proofOk && accepted,
        `anchored in block ${event.blockNumber} (tx ${event.txHash}); the proof ${proofOk ? "leads" : "does not lead"} to the anchored root` +
          (proofOk && !accepted ? ", but the contract's verifyPrediction rejects it" : ""),
      );
    }
    if (event !== null) checks.push(await revocationCheck(chain, "batch_not_revoked", anchoring.batchId, "batch"));
  }
  // 5. The signer may sign for the ledger.
  if (signer !== null) checks.push(await signerCheck(chain, signer, batch?.event ?? null));
  // 6. The model and everything it was trained on.
  const model = await modelFacts(chain, receipt.modelHash, claims);
  checks.push(...model.checks);
  // 7. Its times: after its model was registered, before its batch was anchored.
  checks.push(...timeChecks(receipt, model, batch, anchoring));
  // 8. Every block the evidence names holds what it claims.
  checks.push(await claimsCheck(chain, claims));
  // 9. The files: a browser has no artifact store.
  if (model.event !== null) add("artifacts", null, "no artifact store given: files not checked");

  const verdict = checks.some((c) => c.ok === false) ? "invalid" : anchoring === null ? "pending" : "valid";
  return { subject: receipt.receiptId, kind: "receipt", verdict, checks, calls: chain.calls };
}

export { ReceiptFormatError };
