"""``pending`` where a record's writer vouches for it (:mod:`ledger.verification.pending`):
only a failed registration check of a vouched-for record turns, and only then the verdict."""

from __future__ import annotations

from ledger.verification.pending import asked_once, with_pending
from ledger.verify import Check, Report

MODEL, BATCH, OTHER = "0x" + "aa" * 32, "0x" + "bb" * 32, "0x" + "cc" * 32


def _receipt(*checks: Check) -> Report:
    return Report("0x" + "01" * 32, "receipt", checks)


def _vouch(*hashes: str) -> dict[str, str]:
    return {h: "the service says its write is queued" for h in hashes}


def test_a_missing_record_its_writer_vouches_for_is_pending_with_both_words() -> None:
    report = _receipt(
        Check("signature", True, "signed"),
        Check("model_registered", False, f"no model {MODEL} on chain"),
    )
    pending = with_pending(report, {"model_registered": MODEL}, _vouch(MODEL).get)
    assert report.verdict == "invalid" and pending.verdict == "pending"
    check = pending.check("model_registered")
    assert check.ok is None
    assert check.detail == (
        f"no model {MODEL} on chain yet: pending (the service says its write is queued)"
    )
    assert pending.check("signature") == report.check("signature")


def test_nobody_vouching_or_another_failure_keeps_it_invalid() -> None:
    missing = Check("model_registered", False, f"no model {MODEL} on chain")
    report = _receipt(missing, Check("signature", False, "forged"))
    assert with_pending(report, {"model_registered": MODEL}, _vouch(OTHER).get) is report
    turned = with_pending(report, {"model_registered": MODEL}, _vouch(MODEL).get)
    assert turned.verdict == "invalid"  # the forged signature still fails it
    assert turned.failed == ["signature"]


def test_a_record_the_chain_holds_is_judged_by_the_chain_alone() -> None:
    registered = Check("model_registered", True, "registered in block 3")
    wrong_model = Check("batch_anchored", False, f"batch {BATCH} was anchored for another model")
    report = _receipt(registered, wrong_model)
    subjects = {"model_registered": MODEL, "batch_anchored": BATCH}
    # vouching never passes a check, and only registration checks can wait
    assert with_pending(report, subjects, _vouch(MODEL, BATCH).get) is report
    other = _receipt(Check("signature", False, "forged"))
    assert with_pending(other, {"signature": MODEL}, _vouch(MODEL).get) is other


def test_a_bulk_run_asks_the_writer_once_per_record() -> None:
    asked: list[str] = []

    def writer(record_hash: str) -> str | None:
        asked.append(record_hash)
        return "queued" if record_hash == MODEL else None

    ask = asked_once(writer)
    answers = [ask(h) for h in (MODEL, MODEL.upper().replace("0X", "0x"), OTHER, OTHER)]
    assert answers == ["queued", "queued", None, None]  # a "no" is remembered too
    assert asked == [MODEL, OTHER]
