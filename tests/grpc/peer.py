"""A real gRPC server and client (grpcio) for Tollgate's end-to-end tests.

No generated code: methods take and return raw bytes.
  python peer.py server PORT         serve /test.Echo/{Unary,Chat} on 127.0.0.1:PORT (h2c)
  python peer.py client HOST:PORT    call through the gateway; exit 0 when all checks pass
  python peer.py auth HOST:PORT ALLOWED_TOKEN FORBIDDEN_TOKEN
                                     the gateway's auth answers as gRPC statuses
"""
import sys

import grpc
from concurrent import futures

IDENTITY = (lambda b: b, lambda b: b)


def unary(request, context):
    context.set_trailing_metadata((("x-trailer", "kept"),))
    return b"echo:" + request


def chat(requests, context):
    for message in requests:
        yield b"re:" + message


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, *IDENTITY),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, *IDENTITY),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def check(what, got, want):
    if got != want:
        print(f"FAIL {what}: got {got!r}, want {want!r}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def client(target):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/test.Echo/Unary", *IDENTITY)
        reply, info = call.with_call(b"hello", timeout=10)
        check("unary reply", reply, b"echo:hello")
        check("trailers", dict(info.trailing_metadata()).get("x-trailer"), "kept")

        chat = channel.stream_stream("/test.Echo/Chat", *IDENTITY)
        replies = list(chat(iter([b"a", b"b", b"c"]), timeout=10))
        check("bidi stream", replies, [b"re:a", b"re:b", b"re:c"])

        missing = channel.unary_unary("/nowhere.Service/Method", *IDENTITY)
        try:
            missing(b"x", timeout=10)
            check("no route", "OK", "UNIMPLEMENTED")
        except grpc.RpcError as e:
            check("no route", e.code(), grpc.StatusCode.UNIMPLEMENTED)
    print("all ok", flush=True)


def auth(target, allowed, forbidden):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/test.Echo/Unary", *IDENTITY)
        for what, metadata, want in [
            ("no token", (), grpc.StatusCode.UNAUTHENTICATED),
            ("bad token", (("authorization", "Bearer not.a.token"),), grpc.StatusCode.UNAUTHENTICATED),
            ("forbidden token", (("authorization", f"Bearer {forbidden}"),), grpc.StatusCode.PERMISSION_DENIED),
        ]:
            try:
                call(b"x", metadata=metadata, timeout=10)
                check(what, "OK", want)
            except grpc.RpcError as e:
                check(what, e.code(), want)
        reply = call(b"hi", metadata=(("authorization", f"Bearer {allowed}"),), timeout=10)
        check("allowed token", reply, b"echo:hi")
    print("all ok", flush=True)


if __name__ == "__main__":
    {
        "server": lambda: serve(int(sys.argv[2])),
        "client": lambda: client(sys.argv[2]),
        "auth": lambda: auth(sys.argv[2], sys.argv[3], sys.argv[4]),
    }[sys.argv[1]]()
