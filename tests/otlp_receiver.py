"""A small real OTLP receiver, run as its own process by the end-to-end tests.

    python tests/otlp_receiver.py

Serves OTLP over gRPC and over HTTP (protobuf, ``/v1/traces``, ``/v1/metrics``,
``/v1/logs``) on loopback ports the OS picks, prints ``grpc PORT`` and ``http PORT``,
then one JSON line per span received, with its resource (which oteltap does not print):
``{"transport", "service", "namespace", "trace_id", "span_id", "parent_id", "name",
"attributes", "events", "links", "status"}``. Runs until stdin closes or it is killed.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_print_lock = threading.Lock()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


def _emit(request: trace_service_pb2.ExportTraceServiceRequest, transport: str) -> None:
    lines = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                lines.append(
                    json.dumps(
                        {
                            "transport": transport,
                            "service": resource.get("service.name"),
                            "namespace": resource.get("service.namespace"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "attributes": _attributes(span.attributes),
                            "events": [
                                {"name": e.name, "attributes": _attributes(e.attributes)}
                                for e in span.events
                            ],
                            "links": [link.span_id.hex() for link in span.links],
                            "status": span.status.code,
                        }
                    )
                )
    with _print_lock:
        for line in lines:
            print(line, flush=True)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        _emit(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        return logs_service_pb2.ExportLogsServiceResponse()


class _Http(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply: Any
        if self.path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            _emit(request, "http")
            reply = trace_service_pb2.ExportTraceServiceResponse()
        elif self.path == "/v1/metrics":
            reply = metrics_service_pb2.ExportMetricsServiceResponse()
        elif self.path == "/v1/logs":
            reply = logs_service_pb2.ExportLogsServiceResponse()
        else:
            self.send_error(404)
            return
        payload = reply.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    with _print_lock:
        print(f"grpc {grpc_port}", flush=True)
        print(f"http {http.server_address[1]}", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    http.shutdown()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
