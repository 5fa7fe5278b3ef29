from __future__ import annotations

from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy


def test_deploy_serves_production_and_immutable_urls(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "site")
        a = upload_and_deploy(api, "site", {"index.html": b"A"})
        assert a["status"] == "READY"
    assert anchor.edge("site.localhost").text == "A"
    host = a["url"].split("//")[1].split(":")[0]
    assert anchor.edge(host).text == "A"
