"""oxen-server: repositories by namespace over HTTP, on local disk or an S3 bucket."""
