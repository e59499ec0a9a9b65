// A record the node does not hold, but whose writer (the service) says is on its way: pending.
// The same rule as ledger/verification/pending.py: only a failed registration check whose
// record is absent from the chain may wait, and only when the service, asked, answers 404
// record-pending for it; the check then says both words and the verdict is pending unless
// another check failed. The service's word never passes a check: a record the node holds is
// judged by the node alone. Used only when the auditor lets the page ask the service.

const WHAT = { dataset_registered: "dataset", model_registered: "model", batch_anchored: "batch" };

/** report with each absent record the service vouches for turned pending (see above). */
export async function withPending(report, subjects, pendingOf) {
  let changed = false;
  const checks = [];
  for (const check of report.checks) {
    const record = subjects[check.name];
    const what = WHAT[check.name];
    if (check.ok === false && record && what && check.detail.startsWith(`no ${what} `)) {
      const said = await pendingOf(record);
      if (said !== null) {
        checks.push({ ...check, ok: null, detail: `${check.detail} yet: pending (${said})` });
        changed = true;
        continue;
      }
    }
    checks.push(check);
  }
  if (!changed) return report;
  return { ...report, checks, verdict: checks.some((c) => c.ok === false) ? "invalid" : "pending" };
}

/** What the service serving this page says of a record: its record-pending detail, or null. */
export async function servicePending(recordHash) {
  try {
    const response = await fetch(`/v1/records/${recordHash}`, { headers: { Accept: "application/json" } });
    if (response.status !== 404) return null;
    const problem = await response.json();
    if (!String(problem.type ?? "").endsWith(":record-pending")) return null;
    return `the service says: ${problem.detail}`;
  } catch {
    return null; // no answer: the node's word stands
  }
}
