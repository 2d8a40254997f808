import time, threading, http.server
from tests.test_cloud_e2e import *  # noqa

def _show(label, r):
    print(f"\n{label} exit={r.exit_code} states={[e['state'] for e in (r.run.task_runs if r.run else [])]}\n  stdout={r.stdout[-600:]!r}\n  stderr={r.stderr[-1500:]!r}")

class TokenHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "dbnd-e2e-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

def test_gs_block(gcs_bucket, gcs_server, project, monkeypatch, tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps({"type": "authorized_user", "client_id": "dbnd-test", "client_secret": "dbnd-test",
        "refresh_token": "dbnd-test", "quota_project_id": servers.GCS_PROJECT, "token_uri": f"http://127.0.0.1:{srv.server_address[1]}/token"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(cred))
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket
    store = Store("gs", gcs_bucket, gcs_server, ())
    store.put("in/file.csv", INPUTS["csv"])
    name = servers.unique_name("e2e")
    GcsBucket(bucket=gcs_bucket, bucket_folder="blockroot", gcp_credentials=GcpCredentials(project=servers.GCS_PROJECT)).save(name)
    for i in range(2):
        t=time.time(); r = dbnd("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}", "--set", f"run.storage_block=gcs-bucket/{name}")
        _show(f"gs block {time.time()-t:.1f}s", r)
    print(sorted(store.listing("")))
    srv.shutdown()

def test_gs_raw_token(gcs_bucket, gcs_server, project, monkeypatch):
    from prefect.filesystems import RemoteFileSystem
    store = Store("gs", gcs_bucket, gcs_server, ())
    store.put("in/file.csv", INPUTS["csv"])
    name = servers.unique_name("e2e")
    RemoteFileSystem(basepath=store.uri("root"), settings={"token": RAW_GCS_TOKEN, "endpoint_url": gcs_server.url}).save(name)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{servers.free_port()}")
    t=time.time(); r = dbnd("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}", "--set", f"run.storage_block=remote-file-system/{name}")
    _show(f"gs raw token {time.time()-t:.1f}s", r)
