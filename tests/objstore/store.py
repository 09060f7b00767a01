"""Raw object-store operations for the registry tests (tests/it/stores.rs), with the
stores' own SDKs: make a bucket or container, put or get raw bytes, bypassing treeserve.

    store.py s3|az ENDPOINT BUCKET make
    store.py s3|az ENDPOINT BUCKET put KEY FILE
"""

import sys

AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def main():
    kind, endpoint, bucket, op, *rest = sys.argv[1:]
    if kind == "s3":
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        if op == "make":
            s3.create_bucket(Bucket=bucket)
        elif op == "put":
            key, path = rest
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    elif kind == "az":
        from azure.storage.blob import BlobServiceClient

        conn = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/devstoreaccount1;"
        )
        container = BlobServiceClient.from_connection_string(conn).get_container_client(bucket)
        if op == "make":
            container.create_container()
        elif op == "put":
            key, path = rest
            with open(path, "rb") as f:
                container.upload_blob(key, f.read(), overwrite=True)
    else:
        sys.exit(f"unknown store {kind}")


if __name__ == "__main__":
    main()
