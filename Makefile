# ---- local stack: Kafka + PostgreSQL on 127.0.0.1 (deploy/stack.sh, deploy/README.md) ----
STACK := deploy/stack.sh

.PHONY: up down status

up:
	@bash $(STACK) up

down:
	@bash $(STACK) down

status:
	@bash $(STACK) status
# ---- end local stack ----
