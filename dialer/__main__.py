from dialer.cli.main import main

raise SystemExit(main())
