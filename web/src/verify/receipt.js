// A receipt as ledger/formats/receipts.py defines it: its fields, checked for form as the CLI checks
// them before it asks the chain anything, its hashes, its EIP-712 signer and its Merkle leaf.

import { processProof } from "@openzeppelin/merkle-tree/dist/core.js";
import { standardLeafHash } from "@openzeppelin/merkle-tree/dist/hashes.js";
import { getAddress, recoverAddress, hashTypedData, sha256, stringToBytes } from "viem";
import { CanonicalJsonError, PyInt, canonicalJson } from "./json.js";

export const RECEIPT_LEAF_ENCODING = ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address"];
export const RECEIPT_FIELDS = [
  "receipt_id", "model_hash", "input_hash", "output", "output_hash", "issued_at", "service", "signature",
];
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N / 2n;
const MAX_UINT64 = 2n ** 64n - 1n;
const MAX_SIGNED_PROOF = 32; // ledger.formats.receipts.MAX_SIGNED_PROOF

/** The document is not a receipt (the CLI's "is not a receipt", exit status 1). */
export class ReceiptFormatError extends Error {}

function bytesField(doc, name, size) {
  const value = doc[name];
  if (typeof value !== "string" || !/^0x(?:[0-9a-fA-F]{2})*$/.test(value)) {
    throw new ReceiptFormatError(`${name}: a ${size}-byte value must be 0x-prefixed hex, got ${JSON.stringify(value ?? null)}`);
  }
  if ((value.length - 2) / 2 !== size) {
    throw new ReceiptFormatError(`${name}: a ${size}-byte value must be ${size} bytes, got ${(value.length - 2) / 2}`);
  }
  return value.toLowerCase();
}

function addressField(doc, name) {
  const value = doc[name];
  if (typeof value !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new ReceiptFormatError(`${name}: an address must be a 20-byte 0x-hex address, got ${JSON.stringify(value ?? null)}`);
  }
  const body = value.slice(2);
  const checksummed = getAddress(value.toLowerCase());
  if (body.toLowerCase() !== body && body.toUpperCase() !== body && checksummed !== value) {
    throw new ReceiptFormatError(`${name}: ${value} has a bad EIP-55 checksum`);
  }
  return checksummed;
}

/** A 32-byte hash as ledger.records.hash_hex takes it: hex with or without 0x, any case. */
export function hashHex(value, what) {
  if (typeof value !== "string" || !/^(0x)?[0-9a-fA-F]{64}$/.test(value)) {
    throw new ReceiptFormatError(`malformed anchoring: ${what}: a hash is 0x followed by 64 hex digits, got ${JSON.stringify(value ?? null)}`);
  }
  return `0x${value.replace(/^0x/, "").toLowerCase()}`;
}

/**
 * The receipt's fields from a parsed document (ledger.formats.receipts.Receipt), or ReceiptFormatError.
 * Hashes come out 0x-lowercase, the service's address checksummed, as Python holds them.
 */
export function readReceipt(doc) {
  const fields = Object.create(null);
  for (const name of RECEIPT_FIELDS) fields[name] = doc[name] === undefined ? null : doc[name];
  const receipt = {
    receiptId: bytesField(fields, "receipt_id", 32),
    modelHash: bytesField(fields, "model_hash", 32),
    inputHash: bytesField(fields, "input_hash", 32),
    outputHash: bytesField(fields, "output_hash", 32),
    service: addressField(fields, "service"),
    signature: bytesField(fields, "signature", 65),
    output: fields.output,
  };
  const issued = fields.issued_at;
  if (!(issued instanceof PyInt) || issued.value < 0n || issued.value > MAX_UINT64) {
    throw new ReceiptFormatError("issued_at: an integer in [0, 2**64) is required");
  }
  receipt.issuedAt = issued.value;
  readFormat(doc, receipt);
  try {
    canonicalJson(fields.output);
  } catch (error) {
    throw new ReceiptFormatError(`output: ${error.message}`);
  }
  return receipt;
}

/**
 * The receipt's format (ledger.formats.receipts.Receipt): 1 when absent, signed alone
 * with no signed_root or signed_proof; 2 signed with its request, over signed_root, with the
 * proof from its leaf to that root.
 */
function readFormat(doc, receipt) {
  const given = (name) => doc[name] !== undefined && doc[name] !== null;
  const format = doc.format === undefined ? new PyInt(1n) : doc.format;
  if (!(format instanceof PyInt) || (format.value !== 1n && format.value !== 2n)) {
    throw new ReceiptFormatError(`format: 1 or 2 is required, got ${JSON.stringify(String(doc.format))}`);
  }
  receipt.format = Number(format.value);
  if (receipt.format === 1) {
    if (given("signed_root") || given("signed_proof")) {
      throw new ReceiptFormatError("a format-1 receipt carries no signed_root or signed_proof");
    }
    return;
  }
  if (!given("signed_root") || !given("signed_proof")) {
    throw new ReceiptFormatError("a format-2 receipt carries signed_root and signed_proof");
  }
  receipt.signedRoot = bytesField(doc, "signed_root", 32);
  const proof = doc.signed_proof;
  if (!Array.isArray(proof) || proof.length > MAX_SIGNED_PROOF) {
    throw new ReceiptFormatError(`signed_proof: a list of at most ${MAX_SIGNED_PROOF} hashes is required`);
  }
  receipt.signedProof = proof.map((node, k) => bytesField({ [`signed_proof[${k}]`]: node }, `signed_proof[${k}]`, 32));
}

/** Where a receipt claims to be anchored (ledger.verify.Anchoring.from_json), or null. */
export function readAnchoring(doc) {
  const present = (v) => v !== undefined && v !== null && v !== "" && v !== false;
  if (!present(doc.batch_id) || doc.proof === undefined || doc.proof === null || !present(doc.leaf)) {
    return null;
  }
  if (!Array.isArray(doc.proof)) {
    throw new ReceiptFormatError("malformed anchoring: proof must be a list of hashes");
  }
  const anchoring = {
    batchId: hashHex(doc.batch_id, "batch_id"),
    leaf: hashHex(doc.leaf, "leaf"),
    proof: doc.proof.map((node, k) => hashHex(node, `proof[${k}]`)),
    blockNumber: null,
    txHash: null,
  };
  // The block and transaction of the anchoring, when the document says so: claims to check.
  const block = doc.block_number;
  if (block !== undefined && block !== null) {
    if (!(block instanceof PyInt) || block.value < 0n) {
      throw new ReceiptFormatError("malformed anchoring: a block number is an int >= 0");
    }
    anchoring.blockNumber = Number(block.value);
  }
  if (doc.tx_hash !== undefined && doc.tx_hash !== null) anchoring.txHash = hashHex(doc.tx_hash, "tx_hash");
  return anchoring;
}

const KIND_EVENTS = { dataset: "DatasetRegistered", model: "ModelRegistered", batch: "PredictionsAnchored" };

/**
 * The block claims of an evidence bundle's `records` (ledger.verification.evidence
 * BlockClaims.from_records): a Map from `${event}:${hash}` to {event, key, block, txHash}, for
 * each dataset, model and batch entry with a block number; other entries are ignored.
 */
export function readBlockClaims(records) {
  const claims = new Map();
  if (records === undefined || records === null) return claims;
  if (!Array.isArray(records)) throw new ReceiptFormatError("malformed bundle: records must be a list");
  for (const entry of records) {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) continue;
    const event = Object.hasOwn(KIND_EVENTS, entry.kind) ? KIND_EVENTS[entry.kind] : undefined;
    if (event === undefined) continue;
    const block = entry.block_number;
    if (block === undefined || block === null) continue;
    if (!(block instanceof PyInt) || block.value < 0n) {
      throw new ReceiptFormatError("malformed bundle record: a block number is an int >= 0");
    }
    if (entry.hash === undefined || entry.hash === null) continue;
    let key;
    let txHash = null;
    try {
      key = hashHex(entry.hash, "hash");
      if (entry.tx_hash !== undefined && entry.tx_hash !== null) txHash = hashHex(entry.tx_hash, "tx_hash");
    } catch (error) {
      throw new ReceiptFormatError(`malformed bundle record: ${error.message}`);
    }
    claims.set(`${event}:${key}`, { event, key, block: Number(block.value), txHash });
  }
  return claims;
}

/** SHA-256 of a value's canonical JSON, 0x-hex (ledger.formats.receipts.output_hash / input_hash). */
export function jsonHash(value) {
  return sha256(stringToBytes(canonicalJson(value)));
}

/** input_hash of a row: it must be a JSON object, as in ledger.formats.receipts.input_hash. */
export function inputHash(row) {
  if (row === null || typeof row !== "object" || Array.isArray(row) || row instanceof PyInt) {
    throw new CanonicalJsonError(`an input row is a JSON object, got ${Array.isArray(row) ? "list" : typeof row}`);
  }
  return jsonHash(row);
}

/** The EIP-712 domain of receipts: one ledger contract on one chain. */
export function receiptDomain(chainId, contract) {
  return { name: "ProvenanceLedger", version: "1", chainId: BigInt(chainId), verifyingContract: getAddress(contract) };
}

const ROOT_TYPES = { PredictionReceiptRoot: [{ name: "root", type: "bytes32" }] };
const TYPES = {
  PredictionReceipt: [
    { name: "receiptId", type: "bytes32" },
    { name: "modelHash", type: "bytes32" },
    { name: "inputHash", type: "bytes32" },
    { name: "outputHash", type: "bytes32" },
    { name: "issuedAt", type: "uint64" },
    { name: "service", type: "address" },
  ],
};

/**
 * The signer's checksum address, or an Error naming why no key recovers (as
 * ledger.formats.receipt_signing.recover_signer): for format 2, the receipt's leaf must first
 * fold up its signed_proof to the signed root, which is what the signature signs.
 */
export async function recoverSigner(receipt, domain) {
  let hash;
  if (receipt.format === 2) {
    const reached = processProof(receiptLeafHash(receipt), receipt.signedProof).toLowerCase();
    if (reached !== receipt.signedRoot) {
      throw new Error(
        `the receipt's leaf and signed_proof lead to root ${reached}, not to the signed root ${receipt.signedRoot}: its fields were not signed`,
      );
    }
    hash = hashTypedData({ domain, types: ROOT_TYPES, primaryType: "PredictionReceiptRoot", message: { root: receipt.signedRoot } });
  }
  const sig = receipt.signature;
  const r = BigInt(`0x${sig.slice(2, 66)}`);
  const s = BigInt(`0x${sig.slice(66, 130)}`);
  const v = parseInt(sig.slice(130, 132), 16);
  if (v !== 27 && v !== 28) throw new Error(`signature v must be 27 or 28, got ${v}`);
  if (!(r > 0n && r < SECP256K1_N) || !(s > 0n && s <= HALF_N)) {
    throw new Error("signature r or s is out of range (high s is malleable)");
  }
  hash ??= hashTypedData({
    domain,
    types: TYPES,
    primaryType: "PredictionReceipt",
    message: {
      receiptId: receipt.receiptId,
      modelHash: receipt.modelHash,
      inputHash: receipt.inputHash,
      outputHash: receipt.outputHash,
      issuedAt: receipt.issuedAt,
      service: receipt.service,
    },
  });
  try {
    return getAddress(await recoverAddress({ hash, signature: sig }));
  } catch (error) {
    throw new Error(`no public key recovers from this signature (${error.shortMessage ?? error.message})`);
  }
}

/** The receipt's leaf hash in the batch's StandardMerkleTree (ledger.formats.receipts.receipt_leaf). */
export function receiptLeafHash(receipt) {
  return standardLeafHash(RECEIPT_LEAF_ENCODING, [
    receipt.receiptId,
    receipt.modelHash,
    receipt.inputHash,
    receipt.outputHash,
    receipt.issuedAt,
    receipt.service,
  ]);
}
