"""Part of the API contract that protobuf cannot carry: the ``type`` of each
``google.rpc.PreconditionFailure`` violation a FAILED_PRECONDITION answer holds.

The server sets them and the client library reads them; both import them from here.
"""

# A request about a customer whose data was erased (the subject names the field).
CUSTOMER_ERASED = "CUSTOMER_ERASED"
# A journey start for an order that no plan of the deployment applies to.
NO_PLAN = "NO_PLAN"
