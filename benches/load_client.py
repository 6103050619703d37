"""Small HTTP/1.1 clients for benches/load.sh (standard library only).

  load_client.py idle PORT PATH N [HEADER]
      opens N keep-alive connections to 127.0.0.1:PORT, sends one GET PATH on
      each, reads the whole response (it must be 2xx), prints "ready N" and
      holds the connections open until killed.
  load_client.py sequential PORT PATH N [HEADER]
      sends N GET PATH requests one after another on one keep-alive
      connection, each of which must be 2xx, then prints "done N".

HEADER is one "Name: value" line sent with every request.
"""

import asyncio
import http.client
import sys


def request_bytes(path, header):
    extra = f"{header}\r\n" if header else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


async def one(port, request, gate):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if not 200 <= status < 300:
            raise SystemExit(f"idle: status {status}")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "transfer-encoding":
                raise SystemExit("idle: chunked responses are not expected")
        await reader.readexactly(length)
        return reader, writer


async def idle(port, path, count, header):
    gate = asyncio.Semaphore(200)
    request = request_bytes(path, header)
    connections = await asyncio.gather(*(one(port, request, gate) for _ in range(count)))
    print(f"ready {len(connections)}", flush=True)
    await asyncio.Event().wait()


def sequential(port, path, count, header):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {}
    if header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    for _ in range(count):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if not 200 <= response.status < 300:
            raise SystemExit(f"sequential: status {response.status}")
    print(f"done {count}", flush=True)


def main():
    mode, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    header = sys.argv[5] if len(sys.argv) > 5 else ""
    if mode == "idle":
        asyncio.run(idle(port, path, count, header))
    elif mode == "sequential":
        sequential(port, path, count, header)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
