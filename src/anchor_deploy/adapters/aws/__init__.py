"""The AWS provider: DynamoDB, S3, Lambda versions and aliases, CloudFront."""
