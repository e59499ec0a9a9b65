// The ledger contract read straight from a JSON-RPC node, as a verifier reads it
// (ledger/reading/chain_facts.py over ledger/reading/chain_reader.py): record states through eth_call, each read
// once per verification; every other field from the events, looked for only when the record's
// state says the event exists, first at the block a piece of evidence claims, then by a scan.
// The ABI is the committed artifact's (contracts/build/ProvenanceLedger.json), bundled at build.
// Generations: the contract named is the newest the auditor trusts; records are read through it
// (it asks its predecessors), events from it and every predecessor() it reaches.

import {
  createClient,
  decodeEventLog,
  decodeFunctionResult,
  encodeEventTopics,
  encodeFunctionData,
  getAddress,
  http,
  keccak256,
  numberToHex,
  pad,
  stringToBytes,
} from "viem";
import ABI from "virtual:ledger-abi";

export const REGISTRAR_ROLE = keccak256(stringToBytes("REGISTRAR_ROLE"));
const KINDS = { DatasetRegistered: 1, ModelRegistered: 2, PredictionsAnchored: 3 };

/** The node could not be reached, or answered with an error (the CLI's exit status 2). */
export class ChainUnavailable extends Error {}

/** The address holds no ledger contract (the CLI refuses to verify against it). */
export class ContractNotFound extends Error {}

const topicOf = (eventName) => encodeEventTopics({ abi: ABI, eventName })[0];

export class LedgerReader {
  constructor(rpcUrl, contract) {
    this.rpcUrl = rpcUrl;
    this.address = getAddress(contract);
    this.client = createClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 30_000 }) });
    this.calls = 0;
    this.records = new Map();
    this.head = null;
    this.generationList = null;
  }

  /**
   * Every generation of the ledger, newest (this.address) first: each predecessor() reached
   * from it (contracts before 1.2.0 have none and end the chain), as LedgerReader.generations.
   */
  async generations() {
    if (this.generationList) return this.generationList;
    const found = [this.address];
    const data = encodeFunctionData({ abi: ABI, functionName: "predecessor", args: [] });
    while (found.length < 64) {
      let result;
      try {
        result = await this.request("eth_call", [{ to: found[found.length - 1], data }, "latest"]);
      } catch {
        break; // a contract without predecessor() reverts
      }
      if (!result || result.length !== 66) break;
      const previous = getAddress(decodeFunctionResult({ abi: ABI, functionName: "predecessor", data: result }));
      if (BigInt(previous) === 0n || found.includes(previous)) break;
      found.push(previous);
    }
    this.generationList = found;
    return found;
  }

  /** What eth_getLogs filters on: this contract, or all its generations. */
  async logAddress() {
    const generations = await this.generations();
    return generations.length === 1 ? generations[0] : generations;
  }

  async request(method, params) {
    this.calls += 1;
    try {
      return await this.client.request({ method, params });
    } catch (error) {
      throw new ChainUnavailable(`the chain node at ${this.rpcUrl} is unreachable or refused ${method}: ${error.shortMessage ?? error.message}`);
    }
  }

  async chainId() {
    return Number(BigInt(await this.request("eth_chainId", [])));
  }

  /** The head block every state of this verification is read at (a snapshot). */
  async snapshot() {
    this.head = numberToHex(BigInt(await this.request("eth_blockNumber", [])));
    this.records.clear();
  }

  async call(functionName, args, block = this.head ?? "latest") {
    const data = encodeFunctionData({ abi: ABI, functionName, args });
    const result = await this.request("eth_call", [{ to: this.address, data }, block]);
    if (result === "0x") throw new ContractNotFound(`no ledger contract at ${this.address} on this chain`);
    return decodeFunctionResult({ abi: ABI, functionName, data: result });
  }

  /** Read, in one call, the states of every record asked for that this snapshot lacks. */
  async prefetch(hashes) {
    const missing = [...new Set(hashes)].filter((h) => !this.records.has(h)).sort();
    if (!missing.length) return;
    const states = await this.call("getRecords", [missing]);
    missing.forEach((h, k) => {
      const s = states[k];
      this.records.set(h, s.kind === 0 ? null : { kind: s.kind, revoked: s.revoked, registeredAt: Number(s.registeredAt), registrant: s.registrant });
    });
  }

  /** The stored record under a hash at the snapshot, or null when nothing is registered. */
  async record(hash) {
    await this.prefetch([hash]);
    return this.records.get(hash);
  }

  async holdsRole(account) {
    return this.call("hasRole", [REGISTRAR_ROLE, getAddress(account)]);
  }

  async verifyPrediction(batchId, leaf, proof) {
    return this.call("verifyPrediction", [batchId, leaf, proof]);
  }

  async find(eventName, key, fromBlock, toBlock) {
    const logs = await this.request("eth_getLogs", [
      { address: await this.logAddress(), fromBlock: numberToHex(fromBlock), toBlock, topics: [topicOf(eventName), key] },
    ]);
    return logs.map(decodeLog);
  }

  /**
   * The `eventName` event of record `key` when the record's state says it exists, and the fate
   * of a claimed block: {event, hintOk} (hintOk null when no block was claimed).
   */
  async event(eventName, key, claimed = null) {
    const state = await this.record(key);
    const exists = eventName === "RecordRevoked" ? Boolean(state?.revoked) : state?.kind === KINDS[eventName];
    if (!exists) return { event: null, hintOk: claimed === null ? null : false };
    const head = Number(BigInt(this.head ?? (await this.request("eth_blockNumber", []))));
    if (claimed !== null && claimed <= head) {
      const there = await this.find(eventName, key, claimed, numberToHex(claimed));
      if (there.length) return { event: there[0], hintOk: true };
    }
    const found = await this.find(eventName, key, 0, numberToHex(head));
    return { event: found[0] ?? null, hintOk: claimed === null ? null : false };
  }

  /** REGISTRAR_ROLE changes of `account` as [block, logIndex, granted], in chain order. */
  async roleHistory(account) {
    const topic = pad(getAddress(account).toLowerCase(), { size: 32 });
    const changes = [];
    for (const [eventName, granted] of [["RoleGranted", true], ["RoleRevoked", false]]) {
      const logs = await this.request("eth_getLogs", [
        { address: await this.logAddress(), fromBlock: "0x0", toBlock: this.head ?? "latest", topics: [topicOf(eventName), REGISTRAR_ROLE, topic] },
      ]);
      for (const log of logs) changes.push([Number(BigInt(log.blockNumber)), Number(BigInt(log.logIndex)), granted]);
    }
    return changes.sort((a, b) => a[0] - b[0] || a[1] - b[1] || Number(a[2]) - Number(b[2]));
  }
}

function decodeLog(log) {
  const decoded = decodeEventLog({ abi: ABI, data: log.data, topics: log.topics });
  return {
    name: decoded.eventName,
    args: decoded.args,
    txHash: log.transactionHash.toLowerCase(),
    blockNumber: Number(BigInt(log.blockNumber)),
    logIndex: Number(BigInt(log.logIndex)),
  };
}
