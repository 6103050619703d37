//! An in-memory `s3s` backend: objects in a map, served by the same s3s
//! service (and so the same SigV4 verification) as the file-system store.
//! It holds keys a file system cannot: `a//b`, `dir/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use s3s::dto::{GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, StreamingBlob};
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

/// Objects by (bucket, key).
#[derive(Clone, Default)]
pub struct MemStore {
    objects: Arc<Mutex<HashMap<(String, String), Bytes>>>,
}

impl MemStore {
    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let mut objects = self.objects.lock().unwrap();
        objects.insert(
            (bucket.to_owned(), key.to_owned()),
            Bytes::copy_from_slice(bytes),
        );
    }

    fn get(&self, bucket: &str, key: &str) -> S3Result<Bytes> {
        let objects = self.objects.lock().unwrap();
        objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchKey))
    }
}

#[async_trait::async_trait]
impl S3 for MemStore {
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let bytes = self.get(&req.input.bucket, &req.input.key)?;
        let output = GetObjectOutput {
            content_length: Some(bytes.len() as i64),
            content_type: req.input.response_content_type.clone(),
            body: Some(StreamingBlob::from(s3s::Body::from(bytes))),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let bytes = self.get(&req.input.bucket, &req.input.key)?;
        let output = HeadObjectOutput {
            content_length: Some(bytes.len() as i64),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }
}
