// Test oracle for receipt batches: the npm @openzeppelin/merkle-tree library over receipt leaves.
//
// Input (stdin): a JSON list of jobs, each
//   {"values": [[receiptId, modelHash, inputHash, outputHash, issuedAt, service], ...],
//    "leafEncoding": [...]}
// or {"dump": {...standard-v1 dump...}} to load a tree Python dumped.
// Output (stdout): per job {"root", "proofs" (getProof(i) per value index), "leafHashes",
// "verified" (StandardMerkleTree.verify(root, leafEncoding, value, proof) per value index),
// "dump", "checks" (StandardMerkleTree.verify against this root for each of the job's optional
// "checks": [{"value", "proof"}], e.g. forged ones)}, or {"error": message} if the library threw.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const contracts = new URL('../../../contracts/package.json', import.meta.url);
const require = createRequire(process.env.MERKLE_TREE_PACKAGE_JSON ?? contracts);
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

function run(job) {
  const tree = job.dump
    ? StandardMerkleTree.load(job.dump)
    : StandardMerkleTree.of(job.values, job.leafEncoding);
  tree.validate();
  const proofs = [];
  const leafHashes = [];
  const verified = [];
  for (const [i, value] of tree.entries()) {
    const proof = tree.getProof(i);
    proofs.push(proof);
    leafHashes.push(tree.leafHash(value));
    verified.push(StandardMerkleTree.verify(tree.root, tree.leafEncoding, value, proof));
  }
  const checks = (job.checks ?? []).map(({ value, proof }) => {
    try {
      return StandardMerkleTree.verify(tree.root, tree.leafEncoding, value, proof);
    } catch {
      return false;
    }
  });
  return { root: tree.root, proofs, leafHashes, verified, checks, dump: tree.dump() };
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
