from tests.test_cloud_e2e import *  # noqa

def test_probe(store, project):
    store.put("in/file.csv", INPUTS["csv"])
    other = servers.unique_name("absent")
    for args in (("--set", f"prepare_data.raw_data={store.uri('in/nowhere.csv')}"),
                 ("--set", f"prepare_data.raw_data={store.protocol}://{other}/in/file.csv"),
                 ("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}", "--set", f"run.data_root={store.protocol}://{other}/root")):
        r = dbnd(*args)
        print("\n", store.protocol, r.exit_code, r.stderr.strip().splitlines()[-1])
