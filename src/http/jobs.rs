//! `/jobs/{id}`: a job's state, attempts and error.

use super::*;

/// `/jobs/{id}` routes.
#[derive(Clone)]
pub struct JobsApi(pub SmoApi);

impl std::ops::Deref for JobsApi {
    type Target = SmoApi;
    fn deref(&self) -> &SmoApi {
        &self.0
    }
}

#[OpenApi]
impl JobsApi {
    /// A job: state, attempts, errors, timings.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn job(&self, id: Path<Uuid>) -> ApiResult<Json<JobView>> {
        Ok(Json(self.queue.get(id.0).await?.into()))
    }
}
