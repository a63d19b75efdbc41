from core.service.exit import exit_now
from starter.cli import main

if __name__ == "__main__":
    exit_now(main())
