"""Retrievers for the frameworks applications are built with: LangChain and LlamaIndex.

Each lives in a module of its own that imports its framework, so ``import ragstate``
never does (install the extra: ``ragstate[langchain]``, ``ragstate[llamaindex]``).
"""
