# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The console scripts: thin entry points that parse, wire and run.

Importing this package chooses oslo.service's threading backend for the
process (:func:`doctor_plugin.service.use_threads`): it has to happen
before oslo.messaging is imported, which every command's module does.
"""

from doctor_plugin import service

service.use_threads()
