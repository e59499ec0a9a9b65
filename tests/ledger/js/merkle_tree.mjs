// Test oracle: the npm @openzeppelin/merkle-tree library, driven by JSON on stdin.
//
// Input: a JSON list of jobs, each either
//   {"op": "of",   "values": [[...], ...], "leafEncoding": [...], "sortLeaves": true}
//   {"op": "load", "dump": {...standard-v1 dump...}}
// Output: a JSON list with, per job, {"root", "proofs" (getProof(i) for every value index),
// "leafHashes" (per value index), "dump"}; or {"error": message} if the library threw.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const contracts = new URL('../../../contracts/package.json', import.meta.url);
const require = createRequire(process.env.MERKLE_TREE_PACKAGE_JSON ?? contracts);
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

function run(job) {
  const tree =
    job.op === 'load'
      ? StandardMerkleTree.load(job.dump)
      : StandardMerkleTree.of(job.values, job.leafEncoding, { sortLeaves: job.sortLeaves ?? true });
  const proofs = [];
  const leafHashes = [];
  for (const [i, value] of tree.entries()) {
    proofs.push(tree.getProof(i));
    leafHashes.push(tree.leafHash(value));
  }
  return { root: tree.root, proofs, leafHashes, dump: tree.dump() };
}

const jobs = JSON.parse(readFileSync(0, 'utf8'));
const results = jobs.map(job => {
  try {
    return run(job);
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
});
process.stdout.write(JSON.stringify(results));
