'use strict';
// loopback (Node.js): answers with the event it received and a summary of its Lambda
// context. Behind API Gateway's method-request passthrough template the answer depends on
// event.context.stage: "dev" adds a "detail" block, "prod" answers with a smaller body.
// A body of {"fail": "bad-request"} / {"fail": "internal"} fails with an error whose
// message starts with "[BadRequest]" / "[InternalServerError]" (mapped to 400 / 500 by
// the integration responses' selection patterns). Callback style, no dependencies.

function contextSummary(context) {
  context = context || {};
  return {
    function_name: context.functionName === undefined ? null : context.functionName,
    function_version: context.functionVersion === undefined ? null : context.functionVersion,
    memory_limit_in_mb:
      context.memoryLimitInMB === undefined ? null : Number(context.memoryLimitInMB),
    aws_request_id: context.awsRequestId === undefined ? null : context.awsRequestId,
    remaining_time_in_millis:
      typeof context.getRemainingTimeInMillis === 'function'
        ? context.getRemainingTimeInMillis()
        : null,
    log_group_name: context.logGroupName === undefined ? null : context.logGroupName,
    invoked_function_arn:
      context.invokedFunctionArn === undefined ? null : context.invokedFunctionArn,
  };
}

exports.handler = function (event, context, callback) {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    event = { value: event };
  }
  const request = event.context;
  const stage = request && typeof request === 'object' ? (request.stage ?? null) : null;
  const body = event['body-json'];
  const fail = body && typeof body === 'object' ? (body.fail ?? null) : null;
  const summary = contextSummary(context);

  console.log(
    JSON.stringify({
      msg: 'loopback invoked',
      stage: stage,
      aws_request_id: summary.aws_request_id,
      fail: fail,
    })
  );

  if (fail === 'bad-request') {
    return callback(new Error('[BadRequest] the request body asked to fail with bad-request'));
  }
  if (fail === 'internal') {
    return callback(new Error('[InternalServerError] the request body asked to fail'));
  }

  if (stage === 'prod') {
    return callback(null, {
      stage: 'prod',
      event: { 'body-json': body === undefined ? null : body, params: event.params ?? null },
      context: {
        function_name: summary.function_name,
        function_version: summary.function_version,
        aws_request_id: summary.aws_request_id,
      },
    });
  }

  const answer = { stage: stage, event: event, context: summary };
  if (stage === 'dev') {
    answer.detail = {
      node_version: process.version,
      log_level: process.env.LOG_LEVEL ?? null,
      stage_variables: event['stage-variables'] ?? null,
    };
  }
  return callback(null, answer);
};
