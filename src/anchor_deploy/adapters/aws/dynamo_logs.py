"""Build logs of the DynamoDB store: one item per line (``LOG#<seq>``) under the deployment, and a head item
(``LOGHEAD``: the last seq given, the line and byte counts) that appends compare-and-set, so sequence
numbers are never given twice. Over its cap (model/logs.py) a log is trimmed: the marker is written first
over the last line that goes, then the lines before it are deleted, so a follower never misses the marker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor_deploy.adapters.aws.dynamo_base import ATTEMPTS, DynamoBase
from anchor_deploy.adapters.aws.dynamo_codec import Item, deploy_pk, log_sk
from anchor_deploy.adapters.aws.dynamo_table import TRANSACTION_MAX, StoreContended, TransactionCanceled
from anchor_deploy.model.logs import BuildLogCap, line_cut_marker

_CHUNK_BYTES = 2 * 1024 * 1024  # line bytes per append transaction (4 MB max)
LINE_BYTES_MAX = 64 * 1024


def fit_line(line: str) -> str:
    """A line as stored: one longer than LINE_BYTES_MAX in UTF-8 is cut there (an item holds 400 KB)."""
    encoded = line.encode()
    if len(encoded) <= LINE_BYTES_MAX:
        return line
    kept = encoded[:LINE_BYTES_MAX].decode(errors="ignore")
    return kept + line_cut_marker(len(encoded) - len(kept.encode()))


def _chunks(lines: Sequence[str]) -> list[list[str]]:
    """Lines in runs that fit one transaction with the head's update and the project's check."""
    runs: list[list[str]] = [[]]
    size = 0
    for line in lines:
        length = len(line.encode())
        if runs[-1] and (len(runs[-1]) >= TRANSACTION_MAX - 2 or size + length > _CHUNK_BYTES):
            runs.append([])
            size = 0
        runs[-1].append(line)
        size += length
    return runs


class LogItems(DynamoBase):
    build_log_cap = BuildLogCap()  # the provider's assembly sets the configured one

    def append_log(self, deployment_id: str, lines: Sequence[str]) -> None:
        """Append in order; nothing is written for a deployment that is gone (or whose project is being
        deleted), so no line outlives its deployment."""
        head: Item | None = None
        for run in _chunks([fit_line(line) for line in lines]) if lines else []:
            head = self._append_run(deployment_id, run)
            if head is None:
                return
        if head is not None:
            self._cap_log(deployment_id, head)

    def _append_run(self, deployment_id: str, run: list[str]) -> Item | None:
        """Append one run of lines; the head as it is after it (None: the deployment is gone)."""
        t = self._table
        pk = deploy_pk(deployment_id)
        for _ in range(ATTEMPTS):
            head = t.get(pk, "LOGHEAD")
            if head is None:
                return None
            last = int(head["last_seq"])
            at = self._clock()
            sizes = [len(line.encode()) for line in run]
            rows = [
                t.put({"pk": pk, "sk": log_sk(seq), "seq": seq, "at": at, "line": line, "line_bytes": size})
                for seq, line, size in zip(range(last + 1, last + 1 + len(run)), run, sizes, strict=True)
            ]
            head_update = t.update(
                pk,
                "LOGHEAD",
                "SET last_seq = :new ADD line_count :n, byte_count :b",
                "last_seq = :last",
                values={":new": last + len(run), ":n": len(run), ":b": sum(sizes), ":last": last},
            )
            try:
                t.transact([self._check_live(head["project_id"]), head_update, *rows])
            except TransactionCanceled as refused:
                if refused.failed(0):
                    return None
                if not (refused.failed(1) or refused.conflicted):
                    raise
                continue
            head["last_seq"] = last + len(run)
            head["line_count"] = int(head.get("line_count", 0)) + len(run)
            head["byte_count"] = int(head.get("byte_count", 0)) + sum(sizes)
            return head
        raise StoreContended(f"deployment {deployment_id}: too many concurrent log appends")

    def _cap_log(self, deployment_id: str, head: Item) -> None:
        cap = self.build_log_cap
        if (
            int(head.get("line_count", 0)) <= cap.max_lines
            and int(head.get("byte_count", 0)) <= cap.max_bytes
        ):
            return
        pk = deploy_pk(deployment_id)
        rows = [
            (int(i["seq"]), int(i["line_bytes"]))
            for i in self._table.query(
                "pk = :p AND begins_with(sk, :l)", {":p": pk, ":l": "LOG#"}, projection="seq, line_bytes"
            )
        ]
        cut = cap.cut(rows)
        if cut is None:
            return
        marker = cap.marker(cut - 1 - cap.head_lines)
        size = len(marker.encode())
        t = self._table
        t.write(
            t.put(
                {
                    "pk": pk,
                    "sk": log_sk(cut - 1),
                    "seq": cut - 1,
                    "at": self._clock(),
                    "line": marker,
                    "line_bytes": size,
                }
            )
        )
        gone = [(pk, log_sk(seq)) for seq, _size in rows if cap.head_lines < seq < cut - 1]
        t.batch_delete(gone)
        kept = [(seq, n) for seq, n in rows if seq <= cap.head_lines or seq >= cut]
        values: dict[str, Any] = {
            ":n": len(kept) + 1,
            ":b": sum(n for _seq, n in kept) + size,
            ":last": int(head["last_seq"]),
        }
        # Counts from this look at the whole log; an append meanwhile leaves them to the next trim.
        t.write(
            t.update(pk, "LOGHEAD", "SET line_count = :n, byte_count = :b", "last_seq = :last", values=values)
        )

    def read_log(self, deployment_id: str, after: int = 0) -> list[tuple[int, float, str]]:
        items = self._table.query(
            "pk = :p AND sk BETWEEN :from AND :to",
            {":p": deploy_pk(deployment_id), ":from": log_sk(after + 1), ":to": "LOG#~"},
        )
        return [(int(i["seq"]), float(i["at"]), str(i["line"])) for i in items]
