"""End-to-end tests: a real ``tenure serve`` process, real HTTP on 127.0.0.1."""
