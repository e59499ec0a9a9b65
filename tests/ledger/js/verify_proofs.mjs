// Test oracle: does @openzeppelin/merkle-tree accept a proof? Driven by JSON on stdin.
//
// Input: a JSON list of jobs {"root", "leafEncoding", "value", "proof"}.
// Output: a JSON list with, per job, {"ok": StandardMerkleTree.verify(...), "leafHash"}; or
// {"error": message} if the library threw.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const contracts = new URL('../../../contracts/package.json', import.meta.url);
const require = createRequire(process.env.MERKLE_TREE_PACKAGE_JSON ?? contracts);
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const { standardLeafHash } = require('@openzeppelin/merkle-tree/dist/hashes');

const jobs = JSON.parse(readFileSync(0, 'utf8'));
const results = jobs.map(job => {
  try {
    return {
      ok: StandardMerkleTree.verify(job.root, job.leafEncoding, job.value, job.proof),
      leafHash: standardLeafHash(job.leafEncoding, job.value),
    };
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
});
process.stdout.write(JSON.stringify(results));
