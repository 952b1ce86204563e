//! Lambda entry of the alert dispatcher: the table's DynamoDB stream, with partial batch responses
//! (`ReportBatchItemFailures`), delivering each pending alert (`transfer_alerts::dispatcher`).

use adapters::lambda::{serve_events, ColdStart, Error};
use aws_lambda_events::event::dynamodb::Event as DynamodbEvent;
use transfer_alerts::dispatcher::Dispatcher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    let dispatcher = Dispatcher {
        store: start.store(),
        sender: Box::new(start.alert_sender()?),
        dashboard_url: start.config.dashboard_url.clone(),
    };
    serve_events(dispatcher, |dispatcher, batch: DynamodbEvent| async move {
        Ok::<_, Error>(dispatcher.dispatch_batch(&batch, adapters::now()).await)
    })
    .await
}
