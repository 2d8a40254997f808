import time
import pandas as pd
import fsspec
import os
def storage_options_from_env(p):
    if p=="s3": return {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    if p=="az": return {"connection_string": os.environ["AZURE_STORAGE_CONNECTION_STRING"]}
    return {"endpoint_url": os.environ["STORAGE_EMULATOR_HOST"], "token": "anon"}

def _rt(protocol, bucket):
    t=time.time()
    opts = storage_options_from_env(protocol)
    fs = fsspec.filesystem(protocol, skip_instance_cache=True, **opts)
    df = pd.DataFrame({"a": range(10), "b": list("abcdefghij")})
    with fs.open(f"{bucket}/x.parquet", "wb") as f:
        df.to_parquet(f)
    with fs.open(f"{bucket}/x.parquet", "rb") as f:
        back = pd.read_parquet(f)
    assert back.equals(df)
    print(protocol, fs.info(f"{bucket}/x.parquet"), time.time()-t)

def test_s3(s3_bucket): _rt("s3", s3_bucket)
def test_az(az_container): _rt("az", az_container)
def test_gs(gcs_bucket): _rt("gs", gcs_bucket)
