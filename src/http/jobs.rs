//! `/jobs/{id}`: a job's state, attempts and error.

use super::*;

route_type!(
    /// `/jobs/{id}` routes.
    JobsApi
);

#[OpenApi]
impl JobsApi {
    /// A job: state, attempts, errors, timings.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn job(&self, id: Path<Uuid>) -> ApiResult<Json<JobView>> {
        Ok(Json(self.queue.get(id.0).await?.into()))
    }
}
