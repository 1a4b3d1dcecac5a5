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

extensions = [
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'openstackdocstheme',
]

config_generator_config_file = (
    '../../etc/doctor_plugin/doctor-plugin-config-generator.conf')
sample_config_basename = '_static/doctor_plugin'

openstackdocs_repo_name = 'openstack/doctor-plugin'
openstackdocs_use_storyboard = False
openstackdocs_bug_project = 'doctor-plugin'
openstackdocs_bug_tag = ''

source_suffix = '.rst'
master_doc = 'index'
project = 'doctor_plugin'
copyright = '2026, OpenStack contributors'
add_module_names = False
pygments_style = 'native'
html_theme = 'openstackdocs'
html_static_path = ['_static']
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
